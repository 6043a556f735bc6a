"""img2img's A1111 vocabulary → engine parameters, and the finished job → ``ImageToImageResponse``.

Everything txt2img resolves (prompts, seeds, styles, LoRAs, clip skip) is resolved the same way
(:func:`sdapi.translate.resolve_txt2img`); this adds the image part.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from PIL import Image

from sdapi.checkpoints import CheckpointInfo
from sdapi.engine.params import Img2ImgParams, Txt2ImgParams
from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.hires_plan import img2img_sampler
from sdapi.images import encode_image
from sdapi.img2img_images import PreparedInputs
from sdapi.masking import mask_outputs
from sdapi.options import Options
from sdapi.resize import LATENT_RESIZE
from sdapi.translate import ResolvedRequest, ScriptOverrides, resolve_txt2img, txt2img_response


def noise_multiplier(req, options: Options) -> float:
    """``initial_noise_multiplier``, or the option of that name when the request leaves it null."""
    value = req.initial_noise_multiplier
    return float(options.get("initial_noise_multiplier") if value is None else value)


def resolve_img2img(req, sampler: SamplerSpec, options: Options, prepared: PreparedInputs, styles=None,
                    loras=None, find_checkpoint=None, script_overrides: ScriptOverrides | None = None
                    ) -> ResolvedRequest:
    """Turn a ``StableDiffusionProcessingImg2Img`` (with its prepared images) into engine parameters.

    Args:
        req: the request, with ``batch_size`` already what the images make it (:meth:`PreparedInputs.batch_size`).
        sampler: the requested sampler (PLMS and UniPC run as DDIM: A1111 has no img2img for them).
        options: the option values.
        prepared: the prepared images and mask.
        styles, loras, find_checkpoint, script_overrides: as :func:`sdapi.translate.resolve_txt2img`.
    """
    resolved = resolve_txt2img(req, img2img_sampler(sampler), options, styles, loras=loras,
                               find_checkpoint=find_checkpoint, script_overrides=script_overrides)
    base = {f.name: getattr(resolved.params, f.name) for f in dataclasses.fields(Txt2ImgParams)}
    multiplier = noise_multiplier(req, options)
    params = Img2ImgParams(
        **base,
        init_images=prepared.images,
        mask=prepared.mask.mask if prepared.mask is not None else None,
        latent_mask=prepared.latent_mask if prepared.mask is not None else None,
        latent_resize=req.resize_mode == LATENT_RESIZE,
        denoising_strength=float(req.denoising_strength),
        inpainting_fill=int(req.inpainting_fill or 0),
        noise_multiplier=multiplier,
        fix_steps=bool(options.get("img2img_fix_steps")),
        mask_round=getattr(req, "mask_round", True) is not False,
    )
    if multiplier != 1.0:
        params.extra["Noise multiplier"] = multiplier
    resolved.params = params
    resolved.denoising_strength = req.denoising_strength
    return resolved


def img2img_response(req, resolved: ResolvedRequest, images: list[Image.Image], checkpoint: CheckpointInfo,
                     options: Options, job_timestamp: str, warnings: list[str] | None = None,
                     overlay_mask: Image.Image | None = None, saver=None, grid: bool = True) -> dict[str, Any]:
    """``ImageToImageResponse``: as txt2img's, with ``init_images``/``mask`` echoed only if
    ``include_init_images``, and after each inpainted image the mask images A1111's ``return_mask`` and
    ``return_mask_composite`` options ask for (``overlay_mask``: the inpainting's overlay mask; ``saver``: as
    for txt2img)."""
    body = txt2img_response(req, resolved, images, checkpoint, options, job_timestamp, warnings, saver, grid)
    if overlay_mask is not None and req.send_images:
        add_mask_outputs(body, images, overlay_mask, options)
    if not req.include_init_images:
        body["parameters"]["init_images"] = None
        body["parameters"]["mask"] = None
    return body


def add_mask_outputs(body: dict[str, Any], images: list[Image.Image], overlay_mask: Image.Image,
                     options: Options) -> None:
    """Insert the ``return_mask`` / ``return_mask_composite`` images after each result in ``body["images"]``
    (they have no infotext, as in A1111)."""
    with_mask, with_composite = bool(options.get("return_mask")), bool(options.get("return_mask_composite"))
    if not (with_mask or with_composite):
        return
    first = json.loads(body["info"])["index_of_first_image"]
    fmt, quality = options.get("samples_format"), options.get("jpeg_quality")
    encoded = body["images"][:first]
    for image, data in zip(images, body["images"][first:]):
        encoded.append(data)
        encoded += [encode_image(extra, fmt, quality, False)
                    for extra in mask_outputs(image, overlay_mask, with_mask, with_composite)]
    body["images"] = encoded
