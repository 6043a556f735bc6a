"""``/sdapi/v1/txt2img``: checked at once, then generated on the worker with the job's own options."""

from __future__ import annotations

import functools
from typing import Any

from sdapi.checkpoints import CheckpointInfo
from sdapi.engine.api import GenerationJob, ModelInfo
from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.engine.upscalers import Tiling
from sdapi.options import OptionsView
from sdapi.controlnet.units import ControlTarget
from sdapi.serving.base import Job, ServerState
from sdapi.serving.controlnet import attach_controlnet, with_maps
from sdapi.serving.generation import CheckedRequest, GenerationRun, PreparedGeneration, request_merge_key
from sdapi.serving.job_models import attach_job_models
from sdapi.serving.saving import image_saver
from sdapi.translate import ResolvedRequest, ScriptOverrides, mark_fast_mode, resolve_txt2img, txt2img_response


def txt2img_job(state: ServerState, checked: CheckedRequest) -> Job:
    """The job that serves a checked txt2img request (without a script) on the worker."""
    req = checked.req
    # A1111 counts a hires fix's second pass as a job of its own.
    job_count = req.n_iter * (2 if req.enable_hr else 1)
    return GenerationRun(state, checked, job_count, functools.partial(prepare_txt2img, state, checked),
                         request_merge_key(state, checked, "txt2img"), req.batch_size)


def prepare_txt2img(state: ServerState, checked: CheckedRequest, options: OptionsView) -> PreparedGeneration:
    """The engine job for ``checked`` with its job's ``options``, and how its images become the response."""
    resolved, job, checkpoint = txt2img_engine_job(state, checked.req, checked.sampler, options)

    def respond(images: list, warnings: list[str]) -> dict[str, Any]:
        return txt2img_response(checked.req, resolved, images, checkpoint, options, state.control.job_timestamp,
                                warnings, image_saver(state, options, "txt2img"))

    return PreparedGeneration(job, resolved.warnings, with_maps(respond, resolved.controlnet, checked.req, options))


def txt2img_engine_job(state: ServerState, req, sampler: SamplerSpec, options: OptionsView,
                       script_overrides: ScriptOverrides | None = None
                       ) -> tuple[ResolvedRequest, GenerationJob, CheckpointInfo]:
    """Load the checkpoint ``options`` select and resolve ``req`` (with a script's ``script_overrides``) into the
    engine's job."""
    checkpoint = state.load_for_job(options)
    resolved = resolve_txt2img(req, sampler, options, state.styles, loras=state.loras, upscalers=state.upscalers(),
                               find_checkpoint=state.find_checkpoint, script_overrides=script_overrides)
    p = resolved.params
    if p.fast:
        mark_fast_mode(p, state.engine.fast_precision(checkpoint.filename, p.width, p.height))
    resolved.inpainting_conditioning = txt2img_inpainting_flag(state.engine.load(checkpoint.filename), p)
    hires = (p.hires.width - p.hires.truncate_x * 8, p.hires.height - p.hires.truncate_y * 8) if p.hires else None
    resolved.controlnet = attach_controlnet(state, req, p, options, ControlTarget(p.width, p.height, hires))
    job = GenerationJob(checkpoint.filename, resolved.params, Tiling.from_options(options))
    attach_job_models(state, job, resolved, options, checkpoint)
    return resolved, job, checkpoint


def txt2img_inpainting_flag(model: ModelInfo, params) -> bool:
    """A1111's ``is_using_inpainting_conditioning`` of a txt2img job (its info and ``Conditional mask weight``).

    A1111 v1.10's txt2img sets it from the ldm conditioning key (``hybrid``/``concat``), which its SDXL models report
    as ``crossattn``: an SDXL inpainting model gets the inpainting conditioning without the flag, unless a hires pass
    with a pixel upscaler builds it the img2img way (which sets the flag for SDXL inpainting too).
    """
    if not model.inpainting or not model.sdxl:
        return model.inpainting
    return params.hires is not None and params.hires.latent_mode is None


def generate_txt2img(state: ServerState, req, sampler: SamplerSpec, options: OptionsView
                     ) -> tuple[ResolvedRequest, list, CheckpointInfo]:
    """Generate ``req``'s images with ``options`` (on the worker, inside a begun job; the X/Y/Z plot's cells).

    Returns:
        ``(ResolvedRequest, images, checkpoint)``, what :func:`sdapi.translate.txt2img_response` takes.
    """
    resolved, job, checkpoint = txt2img_engine_job(state, req, sampler, options)
    for warning in resolved.warnings:
        state.control.warn(warning)
    return resolved, state.engine.generate(job, state.control), checkpoint
