# sdapi on a CUDA machine.
#
#   docker build -t sdapi .
#   docker run --gpus all -p 7860:7860 -v /path/to/stable-diffusion-webui:/data sdapi
#   docker run --gpus all -p 7860:7860 -v "$PWD/data:/data" sdapi --xformers --api   # A1111 flags are accepted
#
# /data is the A1111-style data dir (checkpoints in /data/models/Stable-diffusion, config.json, cache.json);
# with no checkpoint there the built-in tiny demo checkpoint is served. Arguments after the image name replace
# CMD and are appended to `sdapi serve --listen` (SDAPI_DATA_DIR keeps /data as the data dir then).
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1

# Ubuntu 24.04's Python is 3.12; a venv because the system Python is externally managed (PEP 668).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# PyPI's Linux torch wheels are CUDA builds; `.[cuda]` adds xformers.
WORKDIR /opt/sdapi
COPY pyproject.toml README.md ./
COPY sdapi ./sdapi
RUN pip install ".[cuda]"

# Settings reads SDAPI_DATA_DIR as the --data-dir default, so extra `docker run` arguments keep /data;
# the demo checkpoint and assembled model configs are cached inside the volume too.
ENV SDAPI_DATA_DIR=/data \
    XDG_CACHE_HOME=/data/.cache
VOLUME /data
WORKDIR /data
EXPOSE 7860

ENTRYPOINT ["sdapi", "serve", "--listen"]
CMD ["--data-dir", "/data"]
