"""The serving layer: what each generation endpoint does between the route and the engine.

One generation runs at a time (A1111's ``queue_lock``); listing endpoints never wait for it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from sdapi.checkpoints import CheckpointCatalog, CheckpointInfo
from sdapi.engine.control import JobControl
from sdapi.engine.samplers import find_sampler
from sdapi.errors import Unprocessable
from sdapi.options import Options
from sdapi.settings import Settings
from sdapi.translate import job_timestamp, resolve_txt2img, txt2img_response, validate_size

log = logging.getLogger("sdapi")

# Output locations and filename patterns cannot be overridden per request (A1111's restricted_opts).
RESTRICTED_OPTIONS = frozenset({
    "samples_filename_pattern", "directories_filename_pattern", "outdir_samples", "outdir_txt2img_samples",
    "outdir_img2img_samples", "outdir_extras_samples", "outdir_grids", "outdir_txt2img_grids",
    "outdir_img2img_grids", "outdir_save", "outdir_init_images",
})


class NoCheckpointAvailable(RuntimeError):
    """No checkpoint in the models folder and the built-in demo is disabled."""


@dataclass
class ServerState:
    """Everything the routes share; built in the app's lifespan (or by tests), never at import time.

    Args:
        settings: start-up settings.
        options: A1111's option values.
        catalog: the checkpoint catalog.
        engine: the engine (``sdapi.engine.engine.Engine``), created lazily so listing needs no torch.
    """

    settings: Settings
    options: Options
    catalog: CheckpointCatalog
    engine: Any
    control: JobControl = field(default_factory=JobControl)
    generation_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- checkpoints -------------------------------------------------------------------------------------

    def selected_checkpoint(self) -> CheckpointInfo:
        """The checkpoint named by the ``sd_model_checkpoint`` option, or A1111's fallback: the first one."""
        wanted = self.options.get("sd_model_checkpoint")
        info = self.catalog.find(wanted)
        if info is None:
            items = self.catalog.items() or self.catalog.refresh()
            if not items:
                raise NoCheckpointAvailable(
                    f"No checkpoints found in {self.settings.models_dir}: put a .safetensors file there"
                )
            info = items[0]
            if wanted:
                log.warning("Checkpoint %s not found; loading fallback %s", wanted, info.title)
        return info

    def activate(self, info: CheckpointInfo) -> CheckpointInfo:
        """Load ``info`` (hashing it once, as A1111 does on load) and make it the current checkpoint."""
        self.catalog.ensure_hashed(info)
        self.engine.model(info.filename)
        self.options.set("sd_model_checkpoint", info.title)
        self.options.set("sd_checkpoint_hash", info.sha256)
        return info

    def load_selected(self) -> CheckpointInfo:
        """Load whatever the options select (start-up and every generation)."""
        return self.activate(self.selected_checkpoint())

    @contextlib.contextmanager
    def overrides(self, override_settings: dict | None, restore: bool) -> Iterator[None]:
        """Apply a request's ``override_settings`` for the duration of one job, as A1111's ``process_images``.

        An unknown key is a ``KeyError`` (A1111's 500); an unknown checkpoint name is silently dropped.
        """
        overrides = {k: v for k, v in (override_settings or {}).items() if k not in RESTRICTED_OPTIONS}
        stored = {k: self.options.get(k) for k in overrides}
        if "sd_model_checkpoint" in overrides and self.catalog.find(overrides["sd_model_checkpoint"]) is None:
            overrides.pop("sd_model_checkpoint")
        try:
            for key, value in overrides.items():
                self.options.set(key, value)
            yield
        finally:
            if restore:
                for key, value in stored.items():
                    self.options.set(key, value)

    # -- generation --------------------------------------------------------------------------------------

    def txt2img(self, req) -> dict[str, Any]:
        """Serve one ``/sdapi/v1/txt2img`` request (blocking; routes run it in the threadpool)."""
        sampler = find_sampler(req.sampler_name or req.sampler_index)
        check_scripts(req)
        log_ignored_fields(req)
        validate_size(req.width, req.height, req.batch_size, req.n_iter, req.steps, self.settings.max_pixels)
        with self.generation_lock, self.overrides(req.override_settings, req.override_settings_restore_afterwards):
            checkpoint = self.load_selected()
            resolved = resolve_txt2img(req, sampler, self.options)
            timestamp = job_timestamp()
            self.control.begin(req.n_iter, timestamp)
            try:
                images = self.engine.txt2img(checkpoint.filename, resolved.params, self.control)
            finally:
                self.control.end()
            return txt2img_response(req, resolved, images, checkpoint, self.options, timestamp)


# Accepted for compatibility but not applied yet; each is logged so a user sees why an image differs.
NOT_YET_APPLIED = {
    "enable_hr": "hires fix is not implemented yet; images have the first-pass size",
    "restore_faces": "face restoration is not available; images are not restored",
    "tiling": "tiling is not implemented yet",
}


def log_ignored_fields(req) -> None:
    """Log once per request each truthy field that sdapi accepts but does not apply yet."""
    for name, why in NOT_YET_APPLIED.items():
        if getattr(req, name, None):
            log.warning("%s=true ignored: %s", name, why)


def check_scripts(req) -> None:
    """No selectable or always-on scripts exist yet: refuse names as A1111 does for unknown ones (422)."""
    if req.script_name:
        raise Unprocessable(f"Script '{req.script_name}' not found")
    for name in (req.alwayson_scripts or {}):
        raise Unprocessable(f"always on script {name} not found")
