"""What txt2img and img2img share in the serving layer: the checks made before a job is queued, and the job's
frame on the worker (its option copy, its warnings, its overrides kept or dropped afterwards).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator

from sdapi.bounds import check_generation, check_lora_weights, check_pixels
from sdapi.controlnet.units import SCRIPT_NAME as CONTROLNET_SCRIPT
from sdapi.engine.api import GenerationJob
from sdapi.engine.batching import merge_groups
from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.engine.sampling.schedulers import resolve_sampler, schedule_label
from sdapi.errors import InvalidRequest, Unprocessable
from sdapi.hires_plan import plan_hires
from sdapi.infotext_request import apply_infotext
from sdapi.prompts.extra_networks import EXTRA_NETWORK_TAG
from sdapi.options import OptionsView
from sdapi.settings import Limits
from sdapi.protocol.base import LATER_FIELDS
from sdapi.scripts.registry import find_script
from sdapi.translate_later import firstpass_image, hires_checkpoint, hires_sampler_choice, refiner_params
from sdapi.serving.base import ServerState
from sdapi.serving.controlnet import check_units
from sdapi.serving.task_ids import new_task_id
from sdapi.serving.options import checked_overrides, job_options, keep_overrides, unknown_checkpoint_warning

log = logging.getLogger("sdapi")

# What may differ between requests sampled in one batch (each image keeps its own).
PER_IMAGE_FIELDS = {"prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength", "seed_resize_from_h",
                    "seed_resize_from_w", "cfg_scale", "batch_size", "init_images", "mask", "inpainting_fill",
                    "override_settings"}

# Accepted for compatibility but not applied yet; each is logged so a user sees why an image differs.
NOT_YET_APPLIED = {
    "restore_faces": "face restoration is not available; images are not restored",
    # A1111 v1.10's API passes the string on undecoded, so a job that uses it fails there.
    "latent_mask": "a separate latent mask is not applied; the mask serves for both",
    "comments": "comments are shown in A1111's web UI only",
}


@dataclass
class CheckedRequest:
    """A generation request that passed every check made before queueing.

    Args:
        req: the request.
        sampler: its sampler.
        overrides: its ``override_settings``, type-checked (unknown checkpoint dropped).
        warnings: what was not applied as asked, for the response's ``info``.
        task_id: A1111's task id (``force_task_id`` or a new one), for ``/internal/progress``.
    """

    req: Any
    sampler: SamplerSpec
    overrides: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    task_id: str | None = None


def check_request(state: ServerState, req, mode: str) -> CheckedRequest:
    """Every check a txt2img/img2img request gets before anything is queued.

    Raises:
        UnknownSampler, Unprocessable, InvalidRequest, KeyError: A1111's answers, or sdapi's 422s.
    """
    state.refuse_while_training()
    apply_infotext(req, mode, state.options)
    choice = resolve_sampler(req.sampler_name or req.sampler_index, req.scheduler)
    sampler = choice.sampler
    # As A1111 v1.10's API does ("populate"): the schedule type travels on the request, by its label.
    req.scheduler = schedule_label(choice.schedule_type)
    check_scripts(req, mode)
    log_ignored_fields(req)
    check_generation(req, state.settings.limits)
    check_lora_weights(req.prompt)
    overrides = checked_overrides(state, req.override_settings)
    check_later_fields(state, req, sampler)
    warnings = [w for w in [choice.warning, unknown_checkpoint_warning(state, overrides)] if w]
    for warning in warnings:
        log.warning("%s", warning)
    if mode == "txt2img":
        validate_hires_size(req, state.options.view(overrides), state.settings.limits)
    task_id = getattr(req, "force_task_id", None) or new_task_id(mode)
    return CheckedRequest(req, sampler, overrides, warnings, task_id)


@dataclass
class PreparedGeneration:
    """A generation request made ready on the worker with its job's options: the engine job, its own warnings,
    and how its images become the response.

    Args:
        job: what the engine runs.
        warnings: what resolving the request could not apply (``<lora:…>`` tags...).
        respond: ``(images, warnings) -> response body``.
    """

    job: GenerationJob
    warnings: list[str]
    respond: Callable[[list, list[str]], dict[str, Any]]


@dataclass
class GenerationRun:
    """A queued txt2img/img2img request: the queue calls it alone, or merges it with queued runs of the same
    ``merge_key`` (:meth:`run_together`), which then share one sampling batch on the engine.

    Args:
        state: the server.
        checked: the checked request.
        job_count: A1111's job count for ``/progress``.
        prepare: ``options -> PreparedGeneration`` (on the worker).
        merge_key: which queued requests it may merge with (``None``: never).
        images: its batch size.
    """

    state: ServerState
    checked: CheckedRequest
    job_count: int
    prepare: Callable[[OptionsView], PreparedGeneration]
    merge_key: Hashable | None = None
    images: int = 1

    def __call__(self) -> dict[str, Any]:
        return run_generation(self.state, self.checked, self.job_count, self._alone)

    def _alone(self, options: OptionsView) -> dict[str, Any]:
        prepared = self.prepare(options)
        for warning in prepared.warnings:
            self.state.control.warn(warning)
        images = self.state.engine.generate(prepared.job, self.state.control)
        return prepared.respond(images, self.state.control.warnings)

    def run_together(self, others: list["GenerationRun"]) -> list[Any]:
        """This run and ``others`` as one job: each prepared with its own options, then those whose engine jobs
        match sampled as one batch. Each member gets its response or its own exception.
        """
        runs = [self, *others]
        with running_tasks(self.state, [run.checked.task_id for run in runs]):
            return self.state.run_job(self.job_count, lambda: run_merged(self.state, runs))


def run_merged(state: ServerState, runs: list[GenerationRun]) -> list[Any]:
    """Prepare every run, sample each set of matching engine jobs as one batch, respond to each run."""
    outcomes: list[Any] = [None] * len(runs)
    ready: list[tuple[int, OptionsView, PreparedGeneration]] = []
    for index, run in enumerate(runs):
        try:
            options = job_options(state, run.checked.overrides)
            ready.append((index, options, run.prepare(options)))
        except Exception as exc:  # noqa: BLE001 - this member's failure, reported to its own client
            outcomes[index] = exc
    for members in merge_groups([prepared.job for _, _, prepared in ready], state.queue.batching.max_images):
        chosen = [ready[i] for i in members]
        images = _generate_together(state, [prepared.job for _, _, prepared in chosen])
        engine_warnings = list(state.control.warnings)
        for (index, options, prepared), result in zip(chosen, images):
            run = runs[index]
            if isinstance(result, BaseException):
                outcomes[index] = result
                continue
            try:
                warnings = run.checked.warnings + prepared.warnings + engine_warnings
                outcomes[index] = prepared.respond(result, warnings)
                if not run.checked.req.override_settings_restore_afterwards:
                    keep_overrides(state, run.checked.overrides, options)
            except Exception as exc:  # noqa: BLE001
                outcomes[index] = exc
    return outcomes


def _generate_together(state: ServerState, jobs: list[GenerationJob]) -> list[Any]:
    """Each job's images, sampled as one batch; if that fails, each job alone (so a failure is its own job's)."""
    if len(jobs) > 1:
        try:
            return state.engine.generate_batch(jobs, state.control)
        except Exception as exc:  # noqa: BLE001 - retried one by one below
            log.warning("A merged batch of %d jobs failed (%s); running them one by one", len(jobs), exc)
    results: list[Any] = []
    for job in jobs:
        try:
            results.append(state.engine.generate(job, state.control))
        except Exception as exc:  # noqa: BLE001
            results.append(exc)
    return results


def request_merge_key(state: ServerState, checked: CheckedRequest, mode: str) -> Hashable | None:
    """What a request must share with queued ones to be merged with them: every field but the per-image ones
    (prompts, seeds, guidance scale, batch size, images), the checkpoint it will use and the LoRA tags of its
    prompts. The engine checks the resolved jobs again before sampling them together.
    """
    req = checked.req
    if req.script_name or (req.n_iter or 1) != 1 or state.queue.batching.max_images <= 1:
        return None
    if any(str(name).lower() == CONTROLNET_SCRIPT for name in (req.alwayson_scripts or {})):
        return None  # ControlNet units run alone (:func:`sdapi.engine.batching.batch_key`)
    fields = req.model_dump(mode="json", exclude=PER_IMAGE_FIELDS)
    checkpoint = checked.overrides.get("sd_model_checkpoint") or state.options.get("sd_model_checkpoint")
    networks = sorted(EXTRA_NETWORK_TAG.findall(f"{req.prompt or ''} {req.negative_prompt or ''}"))
    return json.dumps([mode, fields, later_fields(req), checkpoint, networks, checked.overrides], sort_keys=True,
                      default=str)


def check_later_fields(state: ServerState, req, sampler: SamplerSpec) -> None:
    """Later A1111's fields that name something, checked before queueing with the errors A1111 gives when its
    job starts: the hires sampler, the hires and refiner checkpoints, ``firstpass_image``.

    Raises:
        AssertionError, Exception, ApiError: A1111's 500s (``bad sampler name``, ``Could not find checkpoint``,
            ``Invalid encoded image``).
    """
    if getattr(req, "enable_hr", False):
        hires_sampler_choice(req, sampler)
        hires_checkpoint(req, state.find_checkpoint)
        image = firstpass_image(req)
        if image is not None:
            check_pixels("firstpass_image", image.width * image.height, state.settings.limits, "send a smaller image")
    refiner_params(req, state.options, state.find_checkpoint, False)


# Later fields that say nothing about the images: requests differing only in these may share a batch.
NOT_ABOUT_IMAGES = {"force_task_id", "comments", "infotext"}


def later_fields(req) -> dict[str, Any]:
    """The later A1111 fields a request carries that shape its images (kept out of ``parameters``, so out of
    ``model_dump``)."""
    return {name: getattr(req, name) for name in LATER_FIELDS.get(type(req).model_config.get("title"), ())
            if hasattr(req, name) and name not in NOT_ABOUT_IMAGES}


def run_generation(state: ServerState, checked: CheckedRequest, job_count: int,
                   generate: Callable[[OptionsView], dict[str, Any]]) -> dict[str, Any]:
    """Run one generation job on the worker: its own option copy, its warnings, then its overrides kept when the
    request said not to restore them (and it succeeded).

    Args:
        generate: ``options -> response body``.
    """
    def run() -> dict[str, Any]:
        options = job_options(state, checked.overrides)
        for warning in checked.warnings:
            state.control.warn(warning)
        body = generate(options)
        if not checked.req.override_settings_restore_afterwards:
            keep_overrides(state, checked.overrides, options)
        return body

    with running_tasks(state, [checked.task_id]):
        return state.run_job(job_count, run)


@contextlib.contextmanager
def running_tasks(state: ServerState, task_ids: list[str | None]) -> Iterator[None]:
    """Mark requests' task ids running for the duration, finished afterwards (whatever the outcome)."""
    ids = [task_id for task_id in task_ids if task_id]
    for task_id in ids:
        state.task_ids.started(task_id, state.control)  # on the worker: its own control
    try:
        yield
    finally:
        for task_id in ids:
            state.task_ids.finished(task_id)


def validate_hires_size(req, options: OptionsView, limits: Limits) -> None:
    """Refuse a hires fix whose target exceeds the server's bounds, before anything is queued.

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
    if not plan.enabled:
        return
    for name, value in (("hires fix target width", plan.target_width), ("hires fix target height",
                                                                       plan.target_height)):
        if value > limits.max_side:
            raise InvalidRequest(f"{name} {value} exceeds this server's limit of {limits.max_side} pixels per side; "
                                 "lower hr_scale or hr_resize_x/y")
    check_pixels(f"hires fix target {plan.target_width}x{plan.target_height} times batch_size",
                 plan.target_width * plan.target_height * (req.batch_size or 1), limits,
                 "lower hr_scale or hr_resize_x/y")


def log_ignored_fields(req) -> None:
    """Log once per request each field that sdapi accepts but does not apply yet, when it asks for something."""
    for name, why in NOT_YET_APPLIED.items():
        if getattr(req, name, None):
            log.warning("%s ignored: %s", name, why)


def check_scripts(req, mode: str) -> None:
    """Refuse script names A1111 would not find (422): unknown selectable scripts, and every always-on one but
    ControlNet's (whose units are checked here)."""
    if req.script_name:
        find_script(req.script_name, mode)
    for name in (req.alwayson_scripts or {}):
        if str(name).lower() != CONTROLNET_SCRIPT:
            raise Unprocessable(f"always on script {name} not found")
    check_units(req)
