"""What txt2img and img2img share in the serving layer: the checks made before a job is queued, and the job's
frame on the worker (its option copy, its warnings, its overrides kept or dropped afterwards).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from sdapi.bounds import check_generation, check_lora_weights, check_pixels
from sdapi.engine.sampling.registry import SamplerSpec, find_sampler
from sdapi.errors import InvalidRequest, Unprocessable
from sdapi.hires_plan import plan_hires
from sdapi.options import OptionsView
from sdapi.settings import Limits
from sdapi.scripts.registry import find_script
from sdapi.serving.base import ServerState
from sdapi.serving.options import checked_overrides, job_options, keep_overrides, unknown_checkpoint_warning

log = logging.getLogger("sdapi")

# Accepted for compatibility but not applied yet; each is logged so a user sees why an image differs.
NOT_YET_APPLIED = {
    "restore_faces": "face restoration is not available; images are not restored",
}


@dataclass
class CheckedRequest:
    """A generation request that passed every check made before queueing.

    Args:
        req: the request.
        sampler: its sampler.
        overrides: its ``override_settings``, type-checked (unknown checkpoint dropped).
        warnings: what was not applied as asked, for the response's ``info``.
    """

    req: Any
    sampler: SamplerSpec
    overrides: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def check_request(state: ServerState, req, mode: str) -> CheckedRequest:
    """Every check a txt2img/img2img request gets before anything is queued.

    Raises:
        UnknownSampler, Unprocessable, InvalidRequest, KeyError: A1111's answers, or sdapi's 422s.
    """
    state.refuse_while_training()
    sampler = find_sampler(req.sampler_name or req.sampler_index)
    check_scripts(req, mode)
    log_ignored_fields(req)
    check_generation(req, state.settings.limits)
    check_lora_weights(req.prompt)
    overrides = checked_overrides(state, req.override_settings)
    warnings = [w for w in [unknown_checkpoint_warning(state, overrides)] if w]
    for warning in warnings:
        log.warning("%s", warning)
    if mode == "txt2img":
        validate_hires_size(req, state.options.view(overrides), state.settings.limits)
    return CheckedRequest(req, sampler, overrides, warnings)


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

    return state.run_job(job_count, run)


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
            log.warning("%s=true ignored: %s", name, why)


def check_scripts(req, mode: str) -> None:
    """Refuse script names A1111 would not find (422): unknown selectable scripts, and every always-on one
    (none exist yet)."""
    if req.script_name:
        find_script(req.script_name, mode)
    for name in (req.alwayson_scripts or {}):
        raise Unprocessable(f"always on script {name} not found")
