"""``/sdapi/v1/img2img``: checked and decoded at once, then run on the job queue like txt2img.

A1111's order of failures: no ``init_images`` → 404 "Init image not found"; an undecodable mask or image → 500
"Invalid encoded image"; an unknown sampler → 404.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from sdapi.engine.samplers import SamplerSpec, find_sampler
from sdapi.errors import InvalidRequest, NotFound
from sdapi.images import decode_image
from sdapi.img2img_images import composite, prepare_inputs
from sdapi.scripts.registry import script_job
from sdapi.serving import ServerState, check_scripts, log_ignored_fields
from sdapi.translate import job_timestamp, validate_guidance, validate_size
from sdapi.translate_img2img import img2img_response, resolve_img2img
from sdapi.upscalers import Tiling, enlarger, find_upscaler


def img2img_job(state: ServerState, req) -> Callable[[], dict[str, Any]]:
    """Check and decode an img2img request now; return the job that serves it on the worker.

    Raises:
        NotFound, ApiError, Unprocessable, InvalidRequest: before anything is queued.
    """
    state.refuse_while_training()
    if req.init_images is None:
        raise NotFound("Init image not found")
    mask = decode_image(req.mask) if req.mask else None
    sampler = find_sampler(req.sampler_name or req.sampler_index)
    check_scripts(req, "img2img")
    log_ignored_fields(req)
    validate_size(req.width, req.height, req.batch_size, req.n_iter, req.steps, state.settings.max_pixels)
    validate_guidance(req.cfg_scale)
    if req.denoising_strength is None:
        raise InvalidRequest("denoising_strength must be a number, got None")
    images = [decode_image(image) for image in req.init_images]
    if not images:
        raise InvalidRequest("init_images must hold at least one image")
    if req.script_name:
        return script_job(state, req, "img2img", images=images, mask=mask)
    return functools.partial(_run_img2img, state, req, sampler, images, mask)


def _run_img2img(state: ServerState, req, sampler: SamplerSpec, images, mask) -> dict[str, Any]:
    state.control.begin(req.n_iter, job_timestamp())
    try:
        with state.overrides(req.override_settings, req.override_settings_restore_afterwards):
            resolved, outputs, checkpoint = generate_img2img(state, req, sampler, images, mask)
            return img2img_response(req, resolved, outputs, checkpoint, state.options, state.control.job_timestamp)
    finally:
        state.control.end()


def generate_img2img(state: ServerState, req, sampler: SamplerSpec, images, mask) -> tuple[Any, list, Any]:
    """Generate ``req``'s images with the options as they are now (on the worker, inside a begun job).

    Returns:
        ``(ResolvedRequest, composited images, checkpoint)``, what :func:`img2img_response` takes.
    """
    options = state.options
    checkpoint = state.load_selected()
    img2img_upscaler = find_upscaler(options.get("upscaler_for_img2img"), state.upscalers())
    enlarge = enlarger(img2img_upscaler, state.engine.upscaler_runner(Tiling.from_options(options)))
    prepared = prepare_inputs(images, mask, req, options.get("img2img_background_color"), enlarge)
    batch_req = req.model_copy(update={"batch_size": prepared.batch_size(req.batch_size)})
    resolved = resolve_img2img(batch_req, sampler, options, prepared, state.styles, state.loras)
    resolved.inpainting_conditioning = state.engine.is_inpainting(checkpoint.filename)
    outputs = state.engine.img2img(checkpoint.filename, resolved.params, state.control)
    return resolved, composite(outputs, prepared, resolved.params.batch_size), checkpoint

