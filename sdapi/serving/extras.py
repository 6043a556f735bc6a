"""``/sdapi/v1/extra-single-image`` and ``/extra-batch-images``: upscaling on the job queue (A1111's queue lock).

The images are decoded off the event loop, the upscaling runs on the worker inside a job (A1111's
``state.begin()``/``end()``), and the results are encoded with the options as they were when the job started.
"""

from __future__ import annotations

import functools
from typing import Any

from PIL import Image

from sdapi.engine.api import UpscaleJob
from sdapi.engine.upscalers import Tiling, UpscalerSpec
from sdapi.extras import check_result_size, run_extras
from sdapi.errors import InvalidRequest
from sdapi.images import decode_image, encode_image
from sdapi.serving.base import Job, ServerState


def single_image_job(state: ServerState, req) -> Job:
    """Decode ``/extra-single-image``'s image and check the result's size now; the job answers
    ``{"image", "html_info"}``."""
    image = decode_image(req.image)
    _check_sizes(state, [image], req)
    return functools.partial(_single, state, image, req)


def batch_images_job(state: ServerState, req) -> Job:
    """Decode ``/extra-batch-images``' images and check the results' sizes now; the job answers
    ``{"images", "html_info"}``."""
    images = [decode_image(item.data) for item in req.imageList]
    _check_sizes(state, images, req)
    return functools.partial(_batch, state, images, req)


def _check_sizes(state: ServerState, images: list[Image.Image], req) -> None:
    if len(images) > state.settings.limits.max_images:
        raise InvalidRequest(f"imageList holds {len(images)} images, more than this server's limit of "
                             f"{state.settings.limits.max_images}")
    upscalers = state.upscalers()
    for image in images:
        check_result_size(image, req, upscalers, state.settings.limits)


def _single(state: ServerState, image: Image.Image, req) -> dict[str, Any]:
    images, html_info = _upscale_all(state, [image], req)
    return {"image": images[0], "html_info": html_info}


def _batch(state: ServerState, images: list[Image.Image], req) -> dict[str, Any]:
    encoded, html_info = _upscale_all(state, images, req)
    return {"images": encoded, "html_info": html_info}


def _upscale_all(state: ServerState, images: list[Image.Image], req) -> tuple[list[str], str]:
    def run() -> tuple[list[str], str]:
        state.control.job = "extras"
        options = state.options.view()
        tiling = Tiling.from_options(options)

        def upscale(spec: UpscalerSpec, image: Image.Image, scale: float) -> Image.Image:
            return state.engine.upscale(UpscaleJob([image], spec, tiling, scale=scale))[0]

        outputs, html_info = run_extras(images, req, state.upscalers(), upscale, options.get("enable_pnginfo"))
        fmt, quality = options.get("samples_format"), options.get("jpeg_quality")
        return [encode_image(img, fmt, quality, options.get("enable_pnginfo")) for img in outputs], html_info

    return state.run_job(1, run)
