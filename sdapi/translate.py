"""The one place where A1111 vocabulary meets the engine's: request → ``Txt2ImgParams``, result → response.

Nothing here imports torch: the engine's parameter types are plain dataclasses.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image

from sdapi.checkpoints import CheckpointInfo
from sdapi.seeds import image_seeds, resolve_seed
from sdapi.engine.params import SamplerSettings, Txt2ImgParams
from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.engine.sampling.schedulers import resolve_sampler, schedule_label
from sdapi.hires_plan import hires_params, plan_hires
from sdapi.images import encode_image
from sdapi.infotext import LaterQuoted, create_infotext, generation_params
from sdapi.loras import LoraCatalog
from sdapi.options import Options
from sdapi.prompts.extra_networks import parse_prompts
from sdapi.lora_tags import select_loras
from sdapi.engine.upscalers import UPSCALERS
from sdapi.hires_plan import img2img_sampler
from sdapi.translate_later import (
    FindCheckpoint,
    apply_hires_fields,
    firstpass_image,
    hires_checkpoint,
    hires_prompt_texts,
    refiner_params,
)


@dataclass
class ResolvedRequest:
    """A txt2img request with A1111's implicit choices made: seeds, prompts per image, clip skip.

    ``all_prompts`` are the prompts as shown (infotexts, ``info``), ``<lora:…>`` tags kept; ``params.prompts`` are
    what the conditioning sees, tags removed.
    """

    params: Txt2ImgParams
    seed: int
    subseed: int
    all_prompts: list[str] = field(default_factory=list)
    denoising_strength: Any = None  # as info/infotext show it (None when a hires fix turned itself off)
    inpainting_conditioning: bool = False  # the model is an inpainting checkpoint (A1111's info flag)
    warnings: list[str] = field(default_factory=list)  # <lora:…> tags not applied, and why
    vae_name: str | None = None  # the VAE file the job used (None: the checkpoint's own), for the infotext
    vae_hash: str | None = None
    controlnet: Any = None  # the ControlNet units made ready (sdapi.controlnet.units.ResolvedControl), if any


@dataclass
class ScriptOverrides:
    """What a selectable script sets on A1111's ``p`` that a request cannot say: one prompt, negative prompt and
    seed per image (A1111's list-valued ``p.prompt``/``p.seed``), and the script's infotext fields.

    Args:
        prompts, negative_prompts: per image, before styles (``None``: the request's for every image).
        seeds: per image (``None``: the request's seed counted up, as usual).
        extra: infotext fields the script adds; they come before the ones processing adds, as in A1111.
    """

    prompts: list[str] | None = None
    negative_prompts: list[str] | None = None
    seeds: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def styled_prompts(req, styles) -> tuple[str, str]:
    """The request's prompt and negative prompt with its ``styles`` applied (A1111's ``all_prompts`` entries)."""
    prompt, negative = req.prompt or "", req.negative_prompt or ""
    if styles is not None and req.styles:
        prompt, negative = styles.apply(prompt, negative, list(req.styles))
    return prompt, negative


def resolve_txt2img(req, sampler: SamplerSpec, options: Options, styles=None,
                    loras: LoraCatalog | None = None, upscalers=UPSCALERS,
                    find_checkpoint: FindCheckpoint | None = None,
                    script_overrides: ScriptOverrides | None = None) -> ResolvedRequest:
    """Turn a ``StableDiffusionProcessingTxt2Img`` into engine parameters, as A1111's processing init does.

    Args:
        styles: a ``StyleDatabase`` for the request's ``styles`` (``None``: styles are not applied).
        loras: the LoRA catalog for ``<lora:…>`` tags (``None``: tags are only removed from the conditioning).
        upscalers: the upscalers a hires fix may name (``hr_upscaler``).
        find_checkpoint: finds the checkpoints ``hr_checkpoint_name`` and ``refiner_checkpoint`` name (``None``:
            those fields are ignored).
        script_overrides: a script's per-image prompts and seeds (lists ``batch_size * n_iter`` long), its
            infotext fields.

    Raises:
        AssertionError: an unknown ``hr_upscaler`` or ``hr_sampler_name`` (A1111's 500).
        Exception: an unknown hires or refiner checkpoint (A1111's 500).
    """
    plan = plan_hires(req, bool(options.get("use_old_hires_fix_width_height")))
    count = req.batch_size * req.n_iter
    overrides = script_overrides or ScriptOverrides()
    shown, negatives = per_image_prompts(req, styles, overrides, count)
    # v1.2.1 scans only the positive prompts; the tags leave the conditioning but stay in the infotext.
    prompts, networks = parse_prompts(shown)
    # Later A1111's disable_extra_networks: the tags still leave the prompts, nothing is activated.
    selection = select_loras({} if getattr(req, "disable_extra_networks", False) else networks, loras, options)
    seed = resolve_seed(req.seed) if overrides.seeds is None else int(overrides.seeds[0])
    subseed = resolve_seed(req.subseed)
    strength = req.subseed_strength or 0
    seeds, subseeds = image_seeds(seed, subseed, strength, count)
    if overrides.seeds is not None:
        seeds = [int(value) for value in overrides.seeds]
    params = Txt2ImgParams(
        prompts=prompts,
        negative_prompts=negatives,
        seeds=seeds,
        subseeds=subseeds,
        subseed_strength=float(strength),
        sampler=sampler,
        steps=req.steps,
        cfg_scale=float(req.cfg_scale),
        width=plan.width,
        height=plan.height,
        batch_size=req.batch_size,
        n_iter=req.n_iter,
        seed_resize_from=(_int_or(req.seed_resize_from_w, -1), _int_or(req.seed_resize_from_h, -1)),
        clip_skip=max(1, int(options.get("CLIP_stop_at_last_layers"))),
        comma_backtrack=int(options.get("comma_padding_backtrack")),
        emphasis=bool(options.get("enable_emphasis")),
        fix_second_order_schedule=not options.get("dont_fix_second_order_samplers_schedule"),
        loras=selection.activations,
        hires=hires_params(plan, req, req.steps, sampler, upscalers),
        mask_weight=float(options.get("inpainting_mask_weight")),
        circular=bool(req.tiling),
        sampler_settings=sampler_settings(req, sampler, options),
        sdxl_crop=(int(options.get("sdxl_crop_top")), int(options.get("sdxl_crop_left"))),
        sdxl_clip_l_skip=options.get("sdxl_clip_l_skip") is True,
        sdxl_aesthetic_scores=(float(options.get("sdxl_refiner_high_aesthetic_score")),
                               float(options.get("sdxl_refiner_low_aesthetic_score"))),
        fast=bool(options.get("sdapi_fast_mode")),
        **noise_settings(options),
    )
    params.extra.update(overrides.extra)  # set by the script before processing starts
    all_prompts = [text + selection.appended_tag for text in shown]
    if params.hires is not None:
        params.extra.update(apply_hires_fields(
            params.hires, req, sampler, params.sampler_settings,
            lambda spec: sampler_settings(req, spec, options), img2img_sampler,
            (all_prompts, params.negative_prompts), hires_prompt_texts(req, styles, shown, negatives),
            hires_checkpoint(req, find_checkpoint)))
        params.firstpass_image = firstpass_image(req)
    params.extra.update(plan.extra)  # A1111's init adds these before extra networks add theirs
    params.extra.update(eta_infotext(sampler, params.sampler_settings))
    if selection.hashes_text():
        params.extra["Lora hashes"] = LaterQuoted(selection.hashes_text())
    params.refiner, refiner_extra = refiner_params(req, options, find_checkpoint, params.hires is not None)
    params.extra.update(refiner_extra)
    return ResolvedRequest(params=params, seed=seed, subseed=subseed, warnings=selection.warnings,
                           all_prompts=all_prompts, denoising_strength=plan.denoising_strength)


def per_image_prompts(req, styles, overrides: ScriptOverrides, count: int) -> tuple[list[str], list[str]]:
    """Each image's prompt and negative prompt with the request's styles applied (A1111 styles each entry of a
    list-valued prompt on its own)."""
    prompt, negative = styled_prompts(req, styles)
    if overrides.prompts is None and overrides.negative_prompts is None:
        return [prompt] * count, [negative] * count
    raw_prompts = overrides.prompts or [req.prompt or ""] * count
    raw_negatives = overrides.negative_prompts or [req.negative_prompt or ""] * count
    pairs = [styled_prompts(req.model_copy(update={"prompt": p, "negative_prompt": n}), styles)
             for p, n in zip(raw_prompts, raw_negatives)]
    return [p for p, _ in pairs], [n for _, n in pairs]


def _int_or(value, default):
    return default if value is None else value


def sampler_settings(req, sampler: SamplerSpec, options: Options) -> SamplerSettings:
    """The request's sampler parameters with A1111's defaults (its ``StableDiffusionProcessing.__init__`` and the
    samplers' ``initialize``): ``eta`` from ``eta_ancestral`` or ``eta_ddim``, churn from the options."""
    default_eta = options.get("eta_ancestral") if sampler.kdiffusion else options.get("eta_ddim")
    return SamplerSettings(
        eta=float(req.eta if req.eta is not None else default_eta),
        s_churn=float(req.s_churn or options.get("s_churn")),
        s_tmin=float(req.s_tmin or options.get("s_tmin")),
        s_tmax=float(req.s_tmax or float("inf")),
        s_noise=float(req.s_noise or options.get("s_noise")),
        s_min_uncond=float(req.s_min_uncond or options.get("s_min_uncond")),
        schedule_type=resolve_sampler(sampler.name, getattr(req, "scheduler", None)).schedule_type,
    )


def eta_infotext(sampler: SamplerSpec, settings: SamplerSettings) -> dict[str, float]:
    """A1111's ``Eta`` (k-diffusion samplers taking eta, when not 1) or ``Eta DDIM`` (CompVis, when not 0)."""
    if sampler.kdiffusion:
        return {"Eta": settings.eta} if sampler.ancestral and settings.eta != 1.0 else {}
    return {"Eta DDIM": settings.eta} if settings.eta != 0.0 else {}


def mark_fast_mode(params: Txt2ImgParams, precision: str) -> None:
    """Name fast mode and its precision in a fast job's infotext (``Fast mode: bf16``, an sdapi key A1111's
    parser ignores), so the image can be made again the same way."""
    params.extra["Fast mode"] = precision


def noise_settings(options: Options) -> dict[str, Any]:
    """The options that decide how A1111 draws seeded noise, as ``Txt2ImgParams`` fields."""
    return {"eta_noise_seed_delta": int(options.get("eta_noise_seed_delta") or 0),
            "batch_seeds": bool(options.get("enable_batch_seeds")),
            "randn_source": str(options.get("randn_source"))}


def image_infotext(req, resolved: ResolvedRequest, index: int, checkpoint: CheckpointInfo, options: Options) -> str:
    """The v1.2.1 infotext of image ``index``."""
    p = resolved.params
    params = generation_params(
        steps=req.steps,
        sampler=p.sampler.name,
        schedule_type=schedule_label(p.sampler_settings.schedule_type),
        cfg_scale=req.cfg_scale,
        seed=p.seeds[index],
        width=p.width,
        height=p.height,
        model_hash=checkpoint.shorthash if options.get("add_model_hash_to_info") else None,
        model_name=checkpoint.infotext_model_name if options.get("add_model_name_to_info") else None,
        vae_hash=resolved.vae_hash if options.get("add_vae_hash_to_info") else None,
        vae_name=LaterQuoted(resolved.vae_name) if resolved.vae_name and options.get("add_vae_name_to_info") else None,
        subseed=p.subseeds[index],
        subseed_strength=req.subseed_strength,
        seed_resize_from=(req.seed_resize_from_w, req.seed_resize_from_h),
        denoising_strength=resolved.denoising_strength,
        conditional_mask_weight=p.mask_weight if resolved.inpainting_conditioning else None,
        clip_skip=_option_clip_skip(options),
        ensd=options.get("eta_noise_seed_delta"),
        randn_source=options.get("randn_source"),
        s_min_uncond=req.s_min_uncond or 0,
        extra=p.extra,
        version="v1.2.1" if options.get("add_version_to_infotext") else None,
    )
    return create_infotext(resolved.all_prompts[index], p.negative_prompts[index], params)


def _option_clip_skip(options: Options):
    value = options.get("CLIP_stop_at_last_layers")
    return int(value) if float(value).is_integer() else value


def image_grid(images: list[Image.Image], rows: int) -> Image.Image:
    """A1111's grid: ``rows`` rows (-1 → round(sqrt(n))), columns = ceil(n / rows), black background."""
    if rows <= 0:
        rows = max(1, round(math.sqrt(len(images))))
    cols = math.ceil(len(images) / rows)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h), color="black")
    for i, img in enumerate(images):
        grid.paste(img, box=(i % cols * w, i // cols * h))
    return grid


def txt2img_response(req, resolved: ResolvedRequest, images: list[Image.Image], checkpoint: CheckpointInfo,
                     options: Options, job_timestamp: str, warnings: list[str] | None = None,
                     saver=None, grid: bool = True) -> dict[str, Any]:
    """``TextToImageResponse`` for a finished job: images with infotexts, the echo, and ``info``.

    Args:
        warnings: what the job did not apply as asked; listed in ``info["warnings"]`` (an sdapi extension, left
            out when there are none, so ``info`` stays A1111's).
        saver: saves the images and grid when the request has ``save_images``
            (:class:`sdapi.saving.generation.ImageSaver`; ``None``: nothing is saved, as for a script's inner
            calls). Images it could not save are added to the warnings.
        grid: whether a saved batch gets its grid (a script's inner calls set A1111's ``do_not_save_grid``).
    """
    p = resolved.params
    infotexts = [image_infotext(req, resolved, i, checkpoint, options) for i in range(len(images))]
    grid = job_grid(req, images, p.batch_size, options) if grid else None
    if saver is not None and req.save_images:
        # Before the infotext goes into image.info: A1111 saves each sample before that, with only its infotext.
        warnings = list(warnings or []) + saver.save_generation(req, resolved, images, infotexts, grid, checkpoint)
    for img, text in zip(images, infotexts):
        if options.get("enable_pnginfo"):
            img.info["parameters"] = text
    index_of_first_image = 0
    if grid is not None and options.get("return_grid"):
        grid.info["parameters"] = infotexts[0]
        images, infotexts = [grid] + images, [infotexts[0]] + infotexts
        index_of_first_image = 1
    info = {
        "prompt": req.prompt or "",
        "all_prompts": resolved.all_prompts,
        "negative_prompt": req.negative_prompt or "",
        "all_negative_prompts": p.negative_prompts,
        "seed": p.seeds[0],
        "all_seeds": p.seeds,
        "subseed": p.subseeds[0],
        "all_subseeds": p.subseeds,
        "subseed_strength": req.subseed_strength,
        "width": p.width,
        "height": p.height,
        "sampler_name": p.sampler.name,
        "cfg_scale": req.cfg_scale,
        "steps": req.steps,
        "batch_size": p.batch_size,
        "restore_faces": req.restore_faces,
        "face_restoration_model": options.get("face_restoration_model") if req.restore_faces else None,
        "sd_model_hash": checkpoint.shorthash,
        "seed_resize_from_w": req.seed_resize_from_w,
        "seed_resize_from_h": req.seed_resize_from_h,
        "denoising_strength": resolved.denoising_strength,
        "extra_generation_params": p.extra,
        "index_of_first_image": index_of_first_image,
        "infotexts": infotexts,
        "styles": req.styles or [],
        "job_timestamp": job_timestamp,
        "clip_skip": _option_clip_skip(options),
        "is_using_inpainting_conditioning": resolved.inpainting_conditioning,
    }
    if warnings:
        info["warnings"] = list(warnings)
    fmt, quality = options.get("samples_format"), options.get("jpeg_quality")
    encoded = [encode_image(img, fmt, quality, options.get("enable_pnginfo")) for img in images] if req.send_images else []
    return {"images": encoded, "parameters": req.model_dump(), "info": json.dumps(info)}


def job_grid(req, images: list[Image.Image], batch_size: int, options: Options) -> Image.Image | None:
    """The grid A1111 makes after a job, or ``None``: only when the request saves images (its API sets
    ``do_not_save_grid`` otherwise), the grid is returned or saved (``return_grid``, ``grid_save``), and there
    are two images or more unless ``grid_only_if_multiple`` is off."""
    if not req.save_images or not images or not (options.get("return_grid") or options.get("grid_save")):
        return None
    if len(images) < 2 and options.get("grid_only_if_multiple"):
        return None
    rows = int(options.get("n_rows"))
    return image_grid(images, batch_size if rows == 0 else rows)


def job_timestamp() -> str:
    """A1111's ``job_timestamp``: local time as ``%Y%m%d%H%M%S``."""
    return datetime.now().strftime("%Y%m%d%H%M%S")
