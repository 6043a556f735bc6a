"""``/sdapi/v1/txt2img``: checked at once, then generated on the worker with the job's own options."""

from __future__ import annotations

import functools
from typing import Any

from sdapi.checkpoints import CheckpointInfo
from sdapi.engine.api import GenerationJob
from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.engine.upscalers import Tiling
from sdapi.options import OptionsView
from sdapi.serving.base import Job, ServerState
from sdapi.serving.generation import CheckedRequest, run_generation
from sdapi.translate import ResolvedRequest, resolve_txt2img, txt2img_response


def txt2img_job(state: ServerState, checked: CheckedRequest) -> Job:
    """The job that serves a checked txt2img request (without a script) on the worker."""
    req = checked.req
    # A1111 counts a hires fix's second pass as a job of its own.
    job_count = req.n_iter * (2 if req.enable_hr else 1)
    return functools.partial(run_generation, state, checked, job_count,
                             functools.partial(_respond, state, checked))


def _respond(state: ServerState, checked: CheckedRequest, options: OptionsView) -> dict[str, Any]:
    resolved, images, checkpoint = generate_txt2img(state, checked.req, checked.sampler, options)
    return txt2img_response(checked.req, resolved, images, checkpoint, options, state.control.job_timestamp,
                            state.control.warnings)


def generate_txt2img(state: ServerState, req, sampler: SamplerSpec, options: OptionsView
                     ) -> tuple[ResolvedRequest, list, CheckpointInfo]:
    """Generate ``req``'s images with ``options`` (on the worker, inside a begun job).

    Returns:
        ``(ResolvedRequest, images, checkpoint)``, what :func:`sdapi.translate.txt2img_response` takes.
    """
    checkpoint = state.load_for_job(options)
    resolved = resolve_txt2img(req, sampler, options, state.styles, loras=state.loras, upscalers=state.upscalers())
    for warning in resolved.warnings:
        state.control.warn(warning)
    resolved.inpainting_conditioning = state.engine.load(checkpoint.filename).inpainting
    job = GenerationJob(checkpoint.filename, resolved.params, Tiling.from_options(options))
    return resolved, state.engine.generate(job, state.control), checkpoint
