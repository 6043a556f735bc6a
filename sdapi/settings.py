"""Server settings; A1111's launch flags map onto these fields (see ``sdapi.cli``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """Where the built-in demo checkpoint and assembled config dirs live."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sdapi"


@dataclass(frozen=True)
class Limits:
    """The server's bounds on one request (``sdapi serve --max-*``).

    Args:
        max_pixels: ``width * height * batch_size`` (and a hires target or an extras result) at most this.
        max_side: width or height at most this (A1111's UI stops at 2048).
        max_steps: sampling steps at most this (A1111's UI stops at 150).
        max_images: ``batch_size * n_iter`` at most this.
        max_prompt_chars: prompt and negative prompt at most this many characters each.
    """

    max_pixels: int = 4096 * 4096 * 4
    max_side: int = 8192
    max_steps: int = 1000
    max_images: int = 1000
    max_prompt_chars: int = 32768


@dataclass
class Settings:
    """Everything the app needs to start. Created by the CLI or by tests; never at import time.

    Args:
        data_dir: A1111's install root: ``models/Stable-diffusion``, ``models/Lora``, ``config.json``, ``cache.json``.
        ckpt_dir: checkpoint folder (``--ckpt-dir``); defaults to ``data_dir/models/Stable-diffusion``.
        ckpt: checkpoint to start with (``--ckpt``), listed first like A1111 does.
        lora_dir: LoRA folder (``--lora-dir``); defaults to ``data_dir/models/Lora``.
        embeddings_dir: textual-inversion embeddings (``--embeddings-dir``); defaults to ``data_dir/embeddings``.
        vae_dir: VAE files besides ``data_dir/models/VAE`` (``--vae-dir``).
        controlnet_dir: ControlNet files besides ``data_dir/models/ControlNet`` (``--controlnet-dir``).
        annotator_dir: the ControlNet preprocessors' model files (``--controlnet-annotator-models-path``); defaults
            to the extension's ``data_dir/extensions/sd-webui-controlnet/annotator/downloads``.
        vae_path: the one VAE every checkpoint uses (``--vae-path``; the ``sd_vae`` options then do nothing).
        cache_dir: built-in demo checkpoint and assembled diffusers config dirs.
        device: ``auto``, ``cuda`` or ``cpu``.
        no_half: keep fp32 on CUDA (``--no-half``).
        precision: ``autocast`` or ``full``; ``full`` also means fp32.
        xformers: use xformers attention when installed and on CUDA.
        sd_checkpoint_cache: how many extra loaded pipelines to keep (A1111's option of the same name).
        demo_when_empty: serve a built-in demo checkpoint when the models folder has none.
        limits: the bounds on one request.
        api_auth: ``--api-auth "u1:p1,u2:p2"``: HTTP Basic credentials required on every route.
        cors_allow_origins, cors_allow_origins_regex: A1111's CORS flags (comma list / regex).
        api_log: ``--api-log``: one A1111-format line per ``/sdapi`` request.
        styles_file: ``--styles-file``; defaults to ``data_dir/styles.csv``.
        launch_flags: A1111 launch flags as given (argparse dest → value), echoed by ``/cmd-flags``.
        train_busy: what generation does while a LoRA training job is queued or runs: ``queue`` (wait behind
            it) or ``reject`` (409 ``busy: lora training``).
        dataset_roots: folders besides ``data_dir`` that dataset requests (preprocess, tags) may read and write.
        tagger_dir: WD14 tagger folders (``--tagger-dir``); defaults to ``data_dir/models/tagger``.
        blip_dir: BLIP captioning folders (``--blip-dir``); defaults to ``data_dir/models/BLIP``.
        queue_size: jobs that may wait behind the running one (``--queue-size``); more are refused with 503.
        max_batch: most images one merged batch of queued requests holds (``--max-batch``; 1: no merging).
        batch_wait_ms: how long a request may wait for partners while others are still arriving
            (``--batch-wait-ms``).
        task_queue_size: Agent Scheduler tasks that may be pending or running (``--task-queue-size``); more are
            refused with 503.
        task_history_days: days finished Agent Scheduler tasks and their images are kept (``--task-history-days``;
            0: for ever; bookmarked tasks are always kept).
        fast: start with fast mode on (``--fast``): the ``sdapi_fast_mode`` option's value at start-up, which
            ``POST /options`` and a request's ``override_settings`` may change like any option.
        fast_compile: how fast mode compiles (``--fast-compile``): ``full`` (one graph per model) or
            ``regional`` (the repeated blocks; compiles faster, runs slower, see the README).
        web_ui: serve the built-in page at ``/`` too (``--nowebui`` turns it off, as it turns off A1111's UI; the
            page stays at ``/ui``).
    """

    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("SDAPI_DATA_DIR", "data")))
    ckpt_dir: Path | None = None
    ckpt: Path | None = None
    lora_dir: Path | None = None
    embeddings_dir: Path | None = None
    vae_dir: Path | None = None
    vae_path: Path | None = None
    controlnet_dir: Path | None = None
    annotator_dir: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    host: str = "127.0.0.1"
    port: int = 7860
    device: str = "auto"
    no_half: bool = False
    precision: str = "autocast"
    xformers: bool = False
    sd_checkpoint_cache: int = 0
    demo_when_empty: bool = True
    limits: Limits = field(default_factory=Limits)
    num_threads: int | None = None
    ignored_flags: list[str] = field(default_factory=list)
    api_auth: str | None = None
    cors_allow_origins: str | None = None
    cors_allow_origins_regex: str | None = None
    api_log: bool = False
    styles_file: Path | None = None
    launch_flags: dict[str, Any] = field(default_factory=dict)
    train_busy: str = "queue"
    dataset_roots: list[Path] = field(default_factory=list)
    tagger_dir: Path | None = None
    blip_dir: Path | None = None
    queue_size: int = 100
    max_batch: int = 8
    batch_wait_ms: float = 50.0
    task_queue_size: int = 1000
    task_history_days: int = 30
    web_ui: bool = True
    fast: bool = False
    fast_compile: str = "full"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        self.cache_dir = Path(self.cache_dir).expanduser()
        if self.ckpt_dir is not None:
            self.ckpt_dir = Path(self.ckpt_dir).expanduser()
        if self.ckpt is not None:
            self.ckpt = Path(self.ckpt).expanduser()
        for name in ("embeddings_dir", "vae_dir", "vae_path", "controlnet_dir", "annotator_dir"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)).expanduser())
        if self.task_queue_size < 1 or self.task_history_days < 0:
            raise ValueError("task_queue_size must be at least 1 and task_history_days at least 0")

    @property
    def models_dir(self) -> Path:
        """``models/Stable-diffusion`` or ``--ckpt-dir``."""
        return self.ckpt_dir or self.data_dir / "models" / "Stable-diffusion"

    @property
    def loras_dir(self) -> Path:
        """``models/Lora`` or ``--lora-dir``."""
        return Path(self.lora_dir).expanduser() if self.lora_dir else self.data_dir / "models" / "Lora"

    @property
    def embeddings_path(self) -> Path:
        """``embeddings/`` (A1111 keeps it beside ``models/``) or ``--embeddings-dir``."""
        return self.embeddings_dir or self.data_dir / "embeddings"

    @property
    def vae_models_dir(self) -> Path:
        """``models/VAE``, A1111's VAE folder."""
        return self.data_dir / "models" / "VAE"

    @property
    def controlnet_dirs(self) -> list[Path]:
        """Where ControlNet files are found, in the extension's order: ``models/ControlNet``, then
        ``--controlnet-dir``."""
        return [self.data_dir / "models" / "ControlNet"] + ([self.controlnet_dir] if self.controlnet_dir else [])

    @property
    def annotator_path(self) -> Path:
        """Where the ControlNet preprocessors' model files are (``<folder>/<file>``, the extension's layout)."""
        return self.annotator_dir or self.data_dir / "extensions" / "sd-webui-controlnet" / "annotator" / "downloads"

    @property
    def demo_dir(self) -> Path:
        """Folder holding the built-in demo checkpoint."""
        return self.cache_dir / "demo"

    @property
    def models_root(self) -> Path:
        """A1111's ``models/`` folder (``ESRGAN/``, ``RealESRGAN/``, ``SwinIR/``, ``tagger/``, ...)."""
        return self.data_dir / "models"

    @property
    def styles_path(self) -> Path:
        """A1111's ``styles.csv``."""
        return Path(self.styles_file).expanduser() if self.styles_file else self.data_dir / "styles.csv"

    @property
    def taggers_dir(self) -> Path:
        """``models/tagger`` or ``--tagger-dir``: one folder per WD14 tagger (``model.onnx`` + ``selected_tags.csv``)."""
        return Path(self.tagger_dir).expanduser() if self.tagger_dir else self.data_dir / "models" / "tagger"

    @property
    def blip_models_dir(self) -> Path:
        """``models/BLIP`` or ``--blip-dir``: one transformers folder per BLIP captioning model."""
        return Path(self.blip_dir).expanduser() if self.blip_dir else self.data_dir / "models" / "BLIP"

    @property
    def tasks_dir(self) -> Path:
        """The Agent Scheduler's task database and result images."""
        return self.data_dir / "agent_scheduler"

    @property
    def config_file(self) -> Path:
        """A1111's ``config.json`` (the option values)."""
        return self.data_dir / "config.json"

    @property
    def hash_cache_file(self) -> Path:
        """A1111's ``cache.json`` (sha256 per file, keyed by mtime)."""
        return self.data_dir / "cache.json"
