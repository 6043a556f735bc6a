"""Hires fix sizes and infotext keys, as A1111 v1.2.1's ``StableDiffusionProcessingTxt2Img`` computes them.

Arithmetic on the request's numbers (no images); :func:`hires_params` turns the plan into the engine's
``HiresParams``:

* ``firstphase_width/height`` (legacy): when either is non-zero the request's ``width/height`` become the hires
  target and these the first pass (A1111 does this even without ``enable_hr``);
* option ``use_old_hires_fix_width_height``: ``width/height`` are the final size and the first pass is scaled to
  about 512x512, rounded up to multiples of 64;
* ``hr_resize_x == hr_resize_y == 0``: target ``int(width * hr_scale) x int(height * hr_scale)``;
* one side given: the other keeps the aspect ratio; both given: cover the box keeping the aspect ratio, and crop
  the latent centre by ``(cover - target) // 8`` latent pixels;
* a target equal to the first pass turns hires off (``denoising_strength`` becomes ``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sdapi.engine.params import HiresParams
from sdapi.engine.sampling.registry import SamplerSpec, find_sampler
from sdapi.engine.upscalers import UpscalerSpec, find_latent_mode, find_upscaler

LATENT_FACTOR = 8


@dataclass
class HiresPlan:
    """The outcome of A1111's hires ``init``.

    Args:
        enabled: a second pass runs.
        width, height: the first pass's size (what ``info`` and the infotext ``Size`` show).
        target_width, target_height: the upscale target (``hr_upscale_to_x/y``).
        truncate_x, truncate_y: latent pixels cropped after upscaling.
        extra: the infotext keys this adds (``Hires upscale``/``Hires resize``, ``Hires steps``, ``Hires upscaler``).
        denoising_strength: the value ``info``/infotext report (``None`` when hires turned itself off).
    """

    enabled: bool
    width: int
    height: int
    target_width: int = 0
    target_height: int = 0
    truncate_x: int = 0
    truncate_y: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    denoising_strength: Any = None


def old_first_pass_size(width: int, height: int) -> tuple[int, int]:
    """A1111's ``old_hires_fix_first_pass_dimensions``: about 512x512 pixels, sides rounded up to 64."""
    scale = math.sqrt(512 * 512 / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def _cover(width: int, height: int, resize_x: int, resize_y: int) -> tuple[int, int]:
    """The size covering ``resize_x x resize_y`` with the first pass's aspect ratio (either side may be 0)."""
    if resize_y == 0:
        return resize_x, resize_x * height // width
    if resize_x == 0:
        return resize_y * width // height, resize_y
    if width / height < resize_x / resize_y:
        return resize_x, resize_x * height // width
    return resize_y * width // height, resize_y


def plan_hires(req, use_old_sizes: bool = False) -> HiresPlan:
    """Resolve a txt2img request's hires fields (``enable_hr``, ``hr_scale``, ``hr_resize_x/y``, ...).

    Args:
        req: a ``StableDiffusionProcessingTxt2Img`` (an img2img request gives a plan without hires).
        use_old_sizes: A1111's ``use_old_hires_fix_width_height`` option.
    """
    width, height = req.width, req.height
    first_w, first_h = getattr(req, "firstphase_width", 0) or 0, getattr(req, "firstphase_height", 0) or 0
    if first_w != 0 or first_h != 0:
        # A1111 also makes width/height the target here, but its init overwrites that target below.
        width, height = first_w, first_h
    if not getattr(req, "enable_hr", False):  # (img2img requests have no hires fields)
        return HiresPlan(False, width, height, denoising_strength=req.denoising_strength)
    resize_x, resize_y = req.hr_resize_x or 0, req.hr_resize_y or 0
    if use_old_sizes:
        resize_x, resize_y = width, height
        width, height = old_first_pass_size(width, height)
    plan = HiresPlan(True, width, height, denoising_strength=req.denoising_strength)
    if resize_x == 0 and resize_y == 0:
        plan.extra["Hires upscale"] = req.hr_scale
        plan.target_width, plan.target_height = int(width * req.hr_scale), int(height * req.hr_scale)
    else:
        plan.extra["Hires resize"] = f"{resize_x}x{resize_y}"
        plan.target_width, plan.target_height = _cover(width, height, resize_x, resize_y)
        if resize_x and resize_y:
            plan.truncate_x = (plan.target_width - resize_x) // LATENT_FACTOR
            plan.truncate_y = (plan.target_height - resize_y) // LATENT_FACTOR
    if (plan.target_width, plan.target_height) == (width, height):
        return HiresPlan(False, width, height, denoising_strength=None)
    if req.hr_second_pass_steps:
        plan.extra["Hires steps"] = req.hr_second_pass_steps
    if req.hr_upscaler is not None:
        plan.extra["Hires upscaler"] = req.hr_upscaler
    return plan


# Samplers A1111 cannot run img2img with; its hires fix silently uses DDIM for the second pass.
IMG2IMG_FALLBACK = {"PLMS": "DDIM", "UniPC": "DDIM"}


def img2img_sampler(sampler: SamplerSpec) -> SamplerSpec:
    """The sampler an image-conditioned pass runs with (PLMS and UniPC become DDIM, as A1111's hires fix does)."""
    fallback = IMG2IMG_FALLBACK.get(sampler.name)
    return find_sampler(fallback) if fallback else sampler


def hires_params(plan: HiresPlan, req, steps: int, sampler: SamplerSpec,
                 upscalers: list[UpscalerSpec] | tuple[UpscalerSpec, ...]) -> HiresParams | None:
    """The engine's second-pass parameters for an enabled plan (``None`` when hires is off).

    Raises:
        AssertionError: an ``hr_upscaler`` that is neither a latent mode nor a listed upscaler (A1111's 500,
            raised when the job runs, with its message).
    """
    if not plan.enabled:
        return None
    latent_mode = find_latent_mode(req.hr_upscaler)
    upscaler = None if latent_mode is not None else find_upscaler(req.hr_upscaler, upscalers)
    assert latent_mode is not None or upscaler is not None, f"could not find upscaler named {req.hr_upscaler}"
    return HiresParams(width=plan.target_width, height=plan.target_height, truncate_x=plan.truncate_x,
                       truncate_y=plan.truncate_y, latent_mode=latent_mode, upscaler=upscaler,
                       steps=req.hr_second_pass_steps or steps, denoising_strength=float(req.denoising_strength or 0),
                       sampler=img2img_sampler(sampler))
