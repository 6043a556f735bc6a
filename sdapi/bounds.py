"""What a request may ask for: the server's bounds and the value checks a request passes before anything is queued.

One request must not hold the only worker for minutes or the process's memory, and a value that cannot work must be
refused with a 422 naming the field rather than fail deep in sampling with a 500 (A1111's behaviour for most of
these). Each bound is a :class:`sdapi.settings.Limits` field with a documented, configurable default.
"""

from __future__ import annotations

import math

from sdapi.errors import InvalidRequest
from sdapi.lora_tags import LORA_NETWORK, parse_lora_tag
from sdapi.prompts.attention import parse_attention
from sdapi.prompts.extra_networks import parse_prompt
from sdapi.settings import Limits

# Seeds reach torch.manual_seed, which takes 64-bit values; a batch adds its image index to the seed.
MAX_SEED = 2 ** 63 - 1
# Emphasis weights multiply CLIP's float32 hidden states; far beyond any real prompt's (0.1 to ~3), and far below
# where products overflow and the image turns to NaN (A1111's 500).
MAX_EMPHASIS = 10_000.0


def check_size(width, height, batch_size, n_iter, steps, limits: Limits) -> None:
    """Refuse sizes and counts that cannot work or are beyond the server's bounds.

    Raises:
        InvalidRequest: naming the offending field.
    """
    for name, value in (("width", width), ("height", height)):
        if value is None or value <= 0 or value % 8:
            raise InvalidRequest(f"{name} must be a positive multiple of 8, got {value}")
        if value > limits.max_side:
            raise InvalidRequest(f"{name} {value} exceeds this server's limit of {limits.max_side} pixels per side")
    for name, value in (("batch_size", batch_size), ("n_iter", n_iter), ("steps", steps)):
        if value is None or value < 1:
            raise InvalidRequest(f"{name} must be at least 1, got {value}")
    if steps > limits.max_steps:
        raise InvalidRequest(f"steps {steps} exceeds this server's limit of {limits.max_steps}")
    if batch_size * n_iter > limits.max_images:
        raise InvalidRequest(f"batch_size * n_iter = {batch_size * n_iter} images exceeds this server's limit of "
                             f"{limits.max_images}")
    check_pixels("width*height*batch_size", width * height * batch_size, limits, "lower the size or batch_size")


def check_pixels(what: str, pixels: int, limits: Limits, advice: str) -> None:
    """Refuse an image (or batch) larger than the pixel budget.

    Raises:
        InvalidRequest: naming ``what``.
    """
    if pixels > limits.max_pixels:
        raise InvalidRequest(f"{what} = {pixels} pixels exceeds this server's limit of {limits.max_pixels}; {advice}")


def check_finite(name: str, value, allow_none: bool = False) -> None:
    """Refuse a number that is missing (unless allowed), NaN or infinite.

    Raises:
        InvalidRequest: naming the field.
    """
    if value is None:
        if allow_none:
            return
        raise InvalidRequest(f"{name} must be a number, got None")
    if not math.isfinite(float(value)):
        raise InvalidRequest(f"{name} must be a finite number, got {value}")


def check_seed(name: str, value, count: int) -> None:
    """A seed is -1 (random) or a value torch can seed with, ``count`` images later included.

    Raises:
        InvalidRequest: naming the field.
    """
    if value is None or value == -1:
        return
    if not -1 <= int(value) <= MAX_SEED - count:
        raise InvalidRequest(f"{name} must be -1 or between 0 and {MAX_SEED - count}, got {value}")


def check_prompt(name: str, text: str | None, limits: Limits) -> None:
    """A prompt is text the PNG infotext can hold, of bounded length, whose emphasis gives finite weights.

    Raises:
        InvalidRequest: naming the field.
    """
    if not text:
        return
    if len(text) > limits.max_prompt_chars:
        raise InvalidRequest(f"{name} has {len(text)} characters, more than this server's limit of "
                             f"{limits.max_prompt_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(f"{name} is not valid text: a lone surrogate at character {exc.start}") from None
    weights = [weight for _, weight in parse_attention(text)]
    if not all(math.isfinite(weight) and abs(weight) <= MAX_EMPHASIS for weight in weights):
        raise InvalidRequest(f"{name}: its emphasis weights must stay within ±{MAX_EMPHASIS:g} (unbalanced or "
                             "deeply nested brackets multiply them by 1.1 per level)")


def check_non_negative(name: str, value) -> None:
    """Refuse a negative count or size.

    Raises:
        InvalidRequest: naming the field.
    """
    if value is not None and value < 0:
        raise InvalidRequest(f"{name} must not be negative, got {value}")


# Numbers a request may carry that must be finite when present (None keeps A1111's default).
_FINITE_FIELDS = ("subseed_strength", "denoising_strength", "eta", "s_churn", "s_tmin", "s_tmax", "s_noise",
                  "s_min_uncond", "hr_scale", "image_cfg_scale", "initial_noise_multiplier")
_NON_NEGATIVE_FIELDS = ("hr_resize_x", "hr_resize_y", "hr_second_pass_steps", "firstphase_width",
                        "firstphase_height", "inpaint_full_res_padding", "mask_blur", "subseed_strength",
                        "denoising_strength")


def check_generation(req, limits: Limits) -> None:
    """Every value check of a txt2img/img2img request (an X/Y/Z cell's too) that needs no server state.

    Raises:
        InvalidRequest: naming the first offending field.
    """
    check_size(req.width, req.height, req.batch_size, req.n_iter, req.steps, limits)
    check_finite("cfg_scale", req.cfg_scale)
    for name in _FINITE_FIELDS:
        check_finite(name, getattr(req, name, None), allow_none=True)
    for name in _NON_NEGATIVE_FIELDS:
        check_non_negative(name, getattr(req, name, None))
    if getattr(req, "hr_second_pass_steps", None) and req.hr_second_pass_steps > limits.max_steps:
        raise InvalidRequest(f"hr_second_pass_steps {req.hr_second_pass_steps} exceeds this server's limit of "
                             f"{limits.max_steps}")
    if getattr(req, "enable_hr", False) and not (req.hr_resize_x or req.hr_resize_y) and not req.hr_scale > 0:
        raise InvalidRequest(f"hr_scale must be positive with enable_hr, got {req.hr_scale}")
    count = req.batch_size * req.n_iter
    check_seed("seed", req.seed, count)
    check_seed("subseed", req.subseed, count)
    check_prompt("prompt", req.prompt, limits)
    check_prompt("negative_prompt", req.negative_prompt, limits)


def check_lora_weights(prompt: str | None) -> None:
    """``<lora:name:w>`` multipliers that are numbers must be finite (a malformed one is A1111's skip-with-warning,
    but ``nan`` or ``inf`` would turn the image black and put an ``Infinity`` literal into ``info``).

    Raises:
        InvalidRequest: naming the tag.
    """
    _, networks = parse_prompt(prompt or "")
    for params in networks.get(LORA_NETWORK, []):
        try:
            tag = parse_lora_tag(params)
        except ValueError:
            continue  # skipped later with a warning, as A1111 skips it
        if not (math.isfinite(tag.te_multiplier) and math.isfinite(tag.unet_multiplier)):
            raise InvalidRequest(f"prompt: <lora:{':'.join(params.items)}> needs finite multipliers")


# ControlNet: the extension's largest unit count setting (``control_net_unit_count`` slider: 1 to 10), and the
# images one ``/controlnet/detect`` call may hold.
MAX_CONTROLNET_UNITS = 10
MAX_DETECT_IMAGES = 16
