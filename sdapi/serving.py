"""The serving layer: what each endpoint does between the route and the engine.

Device work (generation, model switches) runs on the job queue's one worker, in arrival order (A1111's
``queue_lock``); listing, progress, interrupt and skip never wait for it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sdapi.checkpoints import CheckpointCatalog, CheckpointInfo
from sdapi.engine.control import JobControl
from sdapi.engine.samplers import find_sampler
from sdapi.errors import ApiError, InvalidRequest, Unprocessable
from sdapi.hires_plan import plan_hires
from sdapi.images import encode_image
from sdapi.jobs import JobQueue
from sdapi.loras import LoraCatalog
from sdapi.options import Options, coerce_option
from sdapi.progress import progress_body
from sdapi.scripts.registry import find_script, script_job
from sdapi.settings import Settings
from sdapi.styles import StyleDatabase
from sdapi.translate import (
    job_timestamp,
    resolve_txt2img,
    txt2img_response,
    validate_guidance,
    validate_size,
)
from sdapi.upscalers import Tiling, available_upscalers

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
    styles: StyleDatabase | None = None
    loras: LoraCatalog | None = None  # models/Lora; None: <lora:…> tags are only stripped
    training: Any = None  # sdapi.training.service.TrainingService; created with the state or on first use
    queue: JobQueue = field(init=False)
    _model_lock: threading.RLock = field(default_factory=threading.RLock, init=False)

    def __post_init__(self) -> None:
        # A client that disconnects mid-job interrupts it: its images would go nowhere.
        self.queue = JobQueue(on_cancel_running=self.control.interrupt)
        if self.styles is None:
            self.styles = StyleDatabase(self.settings.styles_path)

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
        with self._model_lock:
            self.catalog.ensure_hashed(info)
            self.engine.model(info.filename)
            self.options.set("sd_model_checkpoint", info.title)
            self.options.set("sd_checkpoint_hash", info.sha256)
        return info

    def load_selected(self) -> CheckpointInfo:
        """Load whatever the options select (start-up and every generation)."""
        return self.activate(self.selected_checkpoint())

    def upscalers(self) -> list:
        """Every upscaler the server can run now: the pixel ones and the model files present (rescanned)."""
        return available_upscalers(self.settings.models_root)

    def switch_checkpoint(self, name: str) -> None:
        """``POST /options`` with ``sd_model_checkpoint``: load it on the worker, after the jobs queued before.

        An unknown name changes nothing (A1111 v1.2.1 answers 200 and keeps the loaded model).
        """
        info = self.catalog.find(name)
        if info is None:
            log.warning("Checkpoint %s not found; keeping %s", name, self.options.get("sd_model_checkpoint"))
            return
        if info.title != self.options.get("sd_model_checkpoint"):
            self.queue.run_sync(functools.partial(self.activate, info), "switch checkpoint")

    def unload_checkpoint(self) -> None:
        """Free every loaded pipeline (``/unload-checkpoint``); the next job loads the selected one again."""
        self.queue.run_sync(self.engine.unload_all, "unload checkpoint")

    def reload_checkpoint(self) -> None:
        """Load the selected checkpoint now (``/reload-checkpoint``)."""
        self.queue.run_sync(self.load_selected, "reload checkpoint")

    # -- options -----------------------------------------------------------------------------------------

    def set_options(self, values: dict[str, Any]) -> None:
        """Apply a ``POST /options`` body: all keys are checked first, so a bad one changes nothing.

        Raises:
            KeyError: an unknown key (A1111's 500).
            InvalidRequest: a value that cannot have the option's type.
        """
        checked = checked_option_values(self.options, values)
        checkpoint = checked.pop("sd_model_checkpoint", None)
        for key, value in checked.items():
            if key in READ_ONLY_OPTIONS:
                if value != self.options.get(key):
                    log.info("Option %s is set by the server; the posted value is ignored", key)
                continue
            self.options.set(key, value)
        if "sd_checkpoint_cache" in checked:
            self.engine.pipelines.extra = max(self.settings.sd_checkpoint_cache, int(checked["sd_checkpoint_cache"]))
        if checkpoint is not None:
            self.switch_checkpoint(checkpoint)
        self.options.save()

    # -- progress, interrupt, skip -----------------------------------------------------------------------

    def progress(self, skip_current_image: bool = False) -> dict[str, Any]:
        """The ``/progress`` body; decodes a live preview when one is due (A1111's ``set_current_image``)."""
        snapshot = self.control.snapshot()
        image = None if skip_current_image or snapshot["job_count"] == 0 else self._current_image(snapshot)
        return progress_body(snapshot, time.time(), image)

    def _current_image(self, snapshot: dict[str, Any]) -> str | None:
        every = int(self.options.get("show_progress_every_n_steps"))
        step = snapshot["sampling_step"]
        due = (self.options.get("live_previews_enable") and every != -1
               and step - self.control.preview_step >= every and snapshot["latents"] is not None)
        if due:
            image = self.engine.preview(snapshot["latents"])
            if image is not None:
                self.control.preview = encode_image(image, self.options.get("samples_format"),
                                                    self.options.get("jpeg_quality"), pnginfo=False)
                self.control.preview_step = step
        return self.control.preview

    def interrupt(self) -> None:
        """Stop the running job at its next step; it still returns what it finished."""
        self.control.interrupt()

    def skip(self) -> None:
        """Skip the current batch of the running job."""
        self.control.skip()

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

    def refuse_while_training(self) -> None:
        """With ``train_busy="reject"``, generation answers 409 while a LoRA training job is queued or runs."""
        if self.settings.train_busy == "reject" and self.training is not None and self.training.busy():
            raise ApiError("busy: lora training", status_code=409)

    def txt2img_job(self, req) -> Callable[[], dict[str, Any]]:
        """Check a ``/sdapi/v1/txt2img`` request now and return the job that serves it on the worker.

        Raises:
            NotFound, Unprocessable, InvalidRequest: before anything is queued.
        """
        self.refuse_while_training()
        sampler = find_sampler(req.sampler_name or req.sampler_index)
        check_scripts(req)
        log_ignored_fields(req)
        validate_size(req.width, req.height, req.batch_size, req.n_iter, req.steps, self.settings.max_pixels)
        validate_guidance(req.cfg_scale)
        validate_hires_size(req, self.options, self.settings.max_pixels)
        if req.script_name:
            return script_job(self, req, "txt2img")
        return functools.partial(self._run_txt2img, req, sampler)

    def _run_txt2img(self, req, sampler) -> dict[str, Any]:
        # A1111 counts a hires fix's second pass as a job of its own.
        self.control.begin(req.n_iter * (2 if req.enable_hr else 1), job_timestamp())
        try:
            with self.overrides(req.override_settings, req.override_settings_restore_afterwards):
                resolved, images, checkpoint = self.generate_txt2img(req, sampler)
                return txt2img_response(req, resolved, images, checkpoint, self.options, self.control.job_timestamp)
        finally:
            self.control.end()

    def generate_txt2img(self, req, sampler) -> tuple[Any, list, CheckpointInfo]:
        """Generate ``req``'s images with the options as they are now (on the worker, inside a begun job).

        Returns:
            ``(ResolvedRequest, images, checkpoint)``, what :func:`sdapi.translate.txt2img_response` takes.
        """
        checkpoint = self.load_selected()
        upscalers = self.upscalers()
        resolved = resolve_txt2img(req, sampler, self.options, self.styles, loras=self.loras, upscalers=upscalers)
        resolved.inpainting_conditioning = self.engine.is_inpainting(checkpoint.filename)
        images = self.engine.txt2img(checkpoint.filename, resolved.params, self.control,
                                     Tiling.from_options(self.options))
        return resolved, images, checkpoint

    def txt2img(self, req) -> dict[str, Any]:
        """Serve one request synchronously through the queue (CLI, benchmarks and tests)."""
        return self.queue.run_sync(self.txt2img_job(req), "txt2img")


# Kept in the option map for clients, but owned by the server: a stale value posted back must not overwrite it.
READ_ONLY_OPTIONS = frozenset({"sd_checkpoint_hash"})


def checked_option_values(options: Options, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` coerced to each option's type, in order.

    Raises:
        KeyError: the first unknown key, as A1111's ``opts.set`` does.
        InvalidRequest: a value of the wrong type.
    """
    checked = {}
    for key, value in values.items():
        if key not in options:
            raise KeyError(key)
        checked[key] = coerce_option(key, value, options.default(key))
    return checked


# Accepted for compatibility but not applied yet; each is logged so a user sees why an image differs.
NOT_YET_APPLIED = {
    "restore_faces": "face restoration is not available; images are not restored",
}


def validate_hires_size(req, options: Options, max_pixels: int) -> None:
    """Refuse a hires fix whose target exceeds the pixel budget, before anything is queued.

    Raises:
        InvalidRequest: naming the target size.
    """
    plan = plan_hires(req, bool(options.get("use_old_hires_fix_width_height")))
    for name, value in (("firstphase_width", plan.width), ("firstphase_height", plan.height)):
        # Legacy firstphase_* replace width/height (A1111 too, even without enable_hr): one of them left 0 would
        # make a zero-size first pass.
        if value <= 0 or value % 8:
            raise InvalidRequest(f"{name} makes the first pass {plan.width}x{plan.height}; "
                                 "both sides must be positive multiples of 8")
    pixels = plan.target_width * plan.target_height * (req.batch_size or 1)
    if plan.enabled and pixels > max_pixels:
        raise InvalidRequest(f"hires fix target {plan.target_width}x{plan.target_height} times batch_size = {pixels} "
                             f"pixels exceeds this server's limit of {max_pixels}; lower hr_scale or hr_resize_x/y")


# Sampler parameters accepted but not applied yet, with the values that mean "not used" (A1111's defaults).
UNAPPLIED_SAMPLER_FIELDS = {"eta": (None,), "s_churn": (None, 0), "s_tmin": (None, 0), "s_tmax": (None, 0),
                            "s_noise": (None, 1)}


def log_ignored_fields(req) -> None:
    """Log once per request each field that sdapi accepts but does not apply yet, when it asks for something."""
    for name, why in NOT_YET_APPLIED.items():
        if getattr(req, name, None):
            log.warning("%s=true ignored: %s", name, why)
    for name, unused in UNAPPLIED_SAMPLER_FIELDS.items():
        value = getattr(req, name, None)
        if value not in unused and value != float("inf"):
            log.warning("%s=%s ignored: sdapi's samplers run with A1111's default for it", name, value)


def check_scripts(req, mode: str = "txt2img") -> None:
    """Refuse script names A1111 would not find (422): unknown selectable scripts, and every always-on one
    (none exist yet)."""
    if req.script_name:
        find_script(req.script_name, mode)
    for name in (req.alwayson_scripts or {}):
        raise Unprocessable(f"always on script {name} not found")
