"""``/sdapi/v1/img2img``: checked and decoded at once, then run on the job queue like txt2img.

A1111's order of failures: no ``init_images`` → 404 "Init image not found"; an undecodable mask or image → 500
"Invalid encoded image"; an unknown sampler → 404.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from PIL import Image

from sdapi.checkpoints import CheckpointInfo
from sdapi.engine.api import Engine, GenerationJob, UpscaleJob
from sdapi.engine.upscalers import Tiling, UpscalerSpec, find_upscaler
from sdapi.errors import InvalidRequest, NotFound
from sdapi.images import decode_image
from sdapi.img2img_images import PreparedInputs, finished, prepare_inputs
from sdapi.options import OptionsView
from sdapi.controlnet.units import ControlTarget
from sdapi.serving.base import Job, ServerState
from sdapi.serving.controlnet import attach_controlnet, with_maps
from sdapi.serving.generation import CheckedRequest, GenerationRun, PreparedGeneration, request_merge_key
from sdapi.serving.job_models import attach_job_models
from sdapi.serving.saving import image_saver
from sdapi.translate import ResolvedRequest, ScriptOverrides, mark_fast_mode
from sdapi.translate_img2img import img2img_response, resolve_img2img


@dataclass
class Img2ImgInputs:
    """An img2img request's decoded images and mask (and, set by an outpainting script, its latent mask)."""

    images: list[Image.Image]
    mask: Image.Image | None
    latent_mask: Image.Image | None = None


def check_init_images(req) -> None:
    """A1111 answers a request without ``init_images`` first, before any other check.

    Raises:
        NotFound: A1111's 404 ``Init image not found``.
    """
    if req.init_images is None:
        raise NotFound("Init image not found")


def decode_mask(req) -> Image.Image | None:
    """The request's mask, decoded (A1111 decodes it before its other checks).

    Raises:
        ApiError: A1111's 500 ``Invalid encoded image``.
    """
    return decode_image(req.mask) if req.mask else None


def decode_inputs(req, mask: Image.Image | None) -> Img2ImgInputs:
    """The request's images, decoded, with its mask.

    Raises:
        ApiError: A1111's 500 ``Invalid encoded image``.
        InvalidRequest: no image at all, or no ``denoising_strength``.
    """
    if req.denoising_strength is None:
        raise InvalidRequest("denoising_strength must be a number, got None")
    inputs = Img2ImgInputs([decode_image(image) for image in req.init_images], mask)
    if not inputs.images:
        raise InvalidRequest("init_images must hold at least one image")
    return inputs


def img2img_job(state: ServerState, checked: CheckedRequest, inputs: Img2ImgInputs) -> Job:
    """The job that serves a checked img2img request (without a script) on the worker."""
    return GenerationRun(state, checked, checked.req.n_iter, functools.partial(prepare_img2img, state, checked, inputs),
                         request_merge_key(state, checked, "img2img"), checked.req.batch_size)


def prepare_img2img(state: ServerState, checked: CheckedRequest, inputs: Img2ImgInputs,
                    options: OptionsView) -> PreparedGeneration:
    """The engine job for ``checked`` with its job's ``options``, and how its images become the response
    (composited over the originals)."""
    resolved, job, checkpoint, prepared = img2img_engine_job(state, checked.req, checked.sampler, inputs, options)

    def respond(outputs: list, warnings: list[str]) -> dict[str, Any]:
        images = finished(outputs, prepared, resolved.params.batch_size, options.get("img2img_color_correction"))
        overlay = prepared.mask.overlay if prepared.mask is not None else None
        return img2img_response(checked.req, resolved, images, checkpoint, options, state.control.job_timestamp,
                                warnings, overlay, image_saver(state, options, "img2img"))

    return PreparedGeneration(job, resolved.warnings, with_maps(respond, resolved.controlnet, checked.req, options))


def img2img_engine_job(state: ServerState, req, sampler, inputs: Img2ImgInputs, options: OptionsView,
                       script_overrides: ScriptOverrides | None = None
                       ) -> tuple[ResolvedRequest, GenerationJob, CheckpointInfo, PreparedInputs]:
    """Load the checkpoint ``options`` select, bring the images to the processing size and resolve ``req``
    (with a script's ``script_overrides``)."""
    checkpoint = state.load_for_job(options)
    img2img_upscaler = find_upscaler(options.get("upscaler_for_img2img"), state.upscalers())
    enlarge = engine_enlarger(state.engine, img2img_upscaler, Tiling.from_options(options))
    prepared = prepare_inputs(inputs.images, inputs.mask, req, options.get("img2img_background_color"), enlarge,
                              inputs.latent_mask)
    batch_req = req.model_copy(update={"batch_size": prepared.batch_size(req.batch_size)})
    resolved = resolve_img2img(batch_req, sampler, options, prepared, state.styles, state.loras,
                               find_checkpoint=state.find_checkpoint, script_overrides=script_overrides)
    p = resolved.params
    if p.fast:
        mark_fast_mode(p, state.engine.fast_precision(checkpoint.filename, p.width, p.height))
    resolved.inpainting_conditioning = state.engine.load(checkpoint.filename).inpainting
    resolved.controlnet = attach_controlnet(state, req, p, options, ControlTarget(
        p.width, p.height, init_image=inputs.images[0], init_resize_mode=req.resize_mode or 0))
    job = GenerationJob(checkpoint.filename, resolved.params)
    attach_job_models(state, job, resolved, options, checkpoint)
    return resolved, job, checkpoint, prepared


def generate_img2img(state: ServerState, req, sampler, inputs: Img2ImgInputs, options: OptionsView
                     ) -> tuple[ResolvedRequest, list, CheckpointInfo]:
    """Generate ``req``'s images with ``options`` (on the worker, inside a begun job; the X/Y/Z plot's cells).

    Returns:
        ``(ResolvedRequest, composited images, checkpoint)``, what :func:`img2img_response` takes.
    """
    resolved, job, checkpoint, prepared = img2img_engine_job(state, req, sampler, inputs, options)
    for warning in resolved.warnings:
        state.control.warn(warning)
    outputs = state.engine.generate(job, state.control)
    return resolved, finished(outputs, prepared, resolved.params.batch_size,
                              options.get("img2img_color_correction")), checkpoint


def engine_enlarger(engine: Engine, spec: UpscalerSpec | None, tiling: Tiling):
    """An ``enlarge`` callable for :func:`sdapi.resize.resize_image` that runs the upscaler on the engine; ``None``
    for no upscaler (plain Lanczos)."""
    if spec is None or spec.name == "None":
        return None

    def enlarge(image: Image.Image, width: int, height: int) -> Image.Image:
        return engine.upscale(UpscaleJob([image], spec, tiling, size=(width, height)))[0]

    return enlarge
