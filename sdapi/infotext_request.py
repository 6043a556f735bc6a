"""Later A1111's (v1.9) ``infotext`` request field: an infotext fills in what the request left unset.

As A1111 v1.10.1's ``Api.apply_infotext``: the infotext is parsed as ``/png-info`` parses it; each paste field the
tab has that the request did not set itself (pydantic's fields set) takes the infotext's value, converted to the
field's type; and each option the infotext names (``Clip skip``, ``ENSD`` …) joins ``override_settings`` unless
the request overrides it already or it equals the current value. ``Model hash`` names the checkpoint only when
the option ``disable_weights_auto_swap`` is off (it is on by default).

The tables are A1111's: txt2img pastes prompts, sizes, seeds, the hires fields and the refiner; img2img has no
``api`` name on its own fields in v1.10.1, so only the shared script fields (steps, sampler, seeds, refiner) fill
an img2img request. A1111's seed script pastes ``Seed resize from-1`` into ``seed_resize_from_h`` (and ``-2`` into
``_w``); sdapi does the same so that an infotext means what it means there.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import ValidationError

from sdapi.infotext import parse_generation_parameters
from sdapi.options import Options

Getter = Callable[[dict[str, Any]], Any]


def _key(label: str) -> Getter:
    return lambda params: params.get(label)


def _enable_hr(params: dict[str, Any]) -> bool:
    # A1111 also counts ``Hires resize-1``, which its parser always fills in (0): with v1.2.1's infotexts, which
    # always carry ``Denoising strength``, every paste would turn the hires fix on. sdapi counts a real resize only.
    resize = str(params.get("Hires resize-1", 0)) not in ("0", "")
    return "Denoising strength" in params and ("Hires upscale" in params or "Hires upscaler" in params or resize)


# Fields the seed, sampler and refiner scripts paste on both tabs (A1111's processing_scripts).
SCRIPT_FIELDS: list[tuple[str, Getter]] = [
    ("steps", _key("Steps")),
    ("sampler_name", _key("Sampler")),
    ("scheduler", _key("Schedule type")),
    ("seed", _key("Seed")),
    ("subseed", _key("Variation seed")),
    ("subseed_strength", _key("Variation seed strength")),
    ("seed_resize_from_h", _key("Seed resize from-1")),
    ("seed_resize_from_w", _key("Seed resize from-2")),
    ("refiner_checkpoint", _key("Refiner")),
    ("refiner_switch_at", _key("Refiner switch at")),
]

TXT2IMG_FIELDS: list[tuple[str, Getter]] = [
    ("prompt", _key("Prompt")),
    ("negative_prompt", _key("Negative prompt")),
    ("cfg_scale", _key("CFG scale")),
    ("width", _key("Size-1")),
    ("height", _key("Size-2")),
    ("batch_size", _key("Batch size")),
    ("denoising_strength", _key("Denoising strength")),
    ("enable_hr", _enable_hr),
    ("hr_scale", _key("Hires upscale")),
    ("hr_upscaler", _key("Hires upscaler")),
    ("hr_second_pass_steps", _key("Hires steps")),
    ("hr_resize_x", _key("Hires resize-1")),
    ("hr_resize_y", _key("Hires resize-2")),
    ("hr_checkpoint_name", _key("Hires checkpoint")),
    ("hr_sampler_name", _key("Hires sampler")),
    ("hr_scheduler", _key("Hires schedule type")),
    ("hr_prompt", _key("Hires prompt")),
    ("hr_negative_prompt", _key("Hires negative prompt")),
    *SCRIPT_FIELDS,
]

PASTE_FIELDS = {"txt2img": TXT2IMG_FIELDS, "img2img": SCRIPT_FIELDS}

# Infotext keys that name an option (A1111's ``OptionInfo(infotext=…)``), for the options sdapi has.
OPTION_KEYS: list[tuple[str, str]] = [
    ("Model hash", "sd_model_checkpoint"),
    ("Clip skip", "CLIP_stop_at_last_layers"),
    ("ENSD", "eta_noise_seed_delta"),
    ("RNG", "randn_source"),
    ("Conditional mask weight", "inpainting_mask_weight"),
    ("Noise multiplier", "initial_noise_multiplier"),
    ("NGMS", "s_min_uncond"),
    ("Eta DDIM", "eta_ddim"),
    ("Eta", "eta_ancestral"),
    ("VAE", "sd_vae"),
    ("Hires refiner", "hires_fix_refiner_pass"),
    ("Refiner switch by sampling steps", "refiner_switch_by_sample_steps"),
]


def apply_infotext(req, mode: str, options: Options) -> dict[str, Any]:
    """Fill ``req`` from its ``infotext`` (a no-op without one).

    Args:
        mode: ``"txt2img"`` or ``"img2img"``.
        options: the current option values (an option equal to its value is not overridden).

    Returns:
        The parsed infotext (empty without one).
    """
    text = getattr(req, "infotext", None)
    if not text:
        return {}
    params = parse_generation_parameters(text)
    explicit = set(req.model_fields_set)
    for name, getter in PASTE_FIELDS[mode]:
        if name in explicit or name not in type(req).model_fields:
            continue
        value = getter(params)
        if value is not None:
            setattr(req, name, _as_field_type(req, name, value))
    if req.override_settings is None:
        req.override_settings = {}
    for label, setting in OPTION_KEYS:
        value = params.get(label)
        if value is None or setting in req.override_settings or setting not in options:
            continue
        if setting == "sd_model_checkpoint" and options.get("disable_weights_auto_swap"):
            continue
        value = _as_option_type(options.get(setting), value)
        if value != options.get(setting):
            req.override_settings[setting] = value
    return params


def _as_field_type(req, name: str, value: Any) -> Any:
    """``value`` converted to the field's type, as the request's own validation converts it (A1111 converts to
    the field's type too); a value it refuses stays as it is."""
    try:
        return getattr(type(req).model_validate({name: value}), name)
    except ValidationError:
        return value


def _as_option_type(current: Any, value: Any) -> Any:
    """An infotext value cast to the option's type (A1111's ``opts.cast_value``)."""
    if isinstance(current, bool):
        return str(value).lower() == "true" if isinstance(value, str) else bool(value)
    for kind in (int, float):
        if isinstance(current, kind):
            try:
                return kind(value)
            except (TypeError, ValueError):
                return value
    return value
