"""ControlNet units from a generation request: read and checked as the extension reads them, then turned into
the engine's :class:`sdapi.engine.params.ControlNetParams` with their control maps, detected-map images and
infotext.

What the extension does, step by step (``scripts/controlnet.py``: ``get_enabled_units``, ``choose_input_image``,
``get_control``; ``internal_controlnet/args.py``: ``ControlNetUnit``):

* units come from ``alwayson_scripts["controlnet"]["args"]``; disabled ones are skipped (``enabled`` defaults to
  false, as in the extension's current unit model); ``input_image``/``lowvram``/``guidance`` are the old names of
  ``image``/``low_vram``/``guidance_end``, ``mask_image`` of ``mask``;
* ``processor_res``, ``threshold_a`` and ``threshold_b`` outside the preprocessor's slider range take its default;
  ``weight`` must lie in ``[0, 2]``, ``guidance_start <= guidance_end`` in ``[0, 1]``;
* the input is the unit's image (its mask, when neither empty nor full, is a drawn scribble and becomes the input),
  else img2img's first init image with img2img's resize mode; none at all is an error;
* ``pixel_perfect`` sets ``processor_res`` from the input and generation sizes;
* the preprocessor's map is fitted to the generation size (and, with a hires fix, to the hires size: that map is
  stored first); the fitted maps are appended to the response's images unless ``control_net_no_detectmap`` is set
  or the unit's ``save_detected_map`` is false;
* the infotext gets ``ControlNet <i>: "Module: …, Model: …, …"`` per enabled unit, with its values after the range
  checks and before ``pixel_perfect``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image
from pydantic import ValidationError

from sdapi.bounds import MAX_CONTROLNET_UNITS
from sdapi.controlnet.detect_map import fit_map, pixel_perfect_resolution, resize_mode_name
from sdapi.controlnet.image_ops import hwc3
from sdapi.controlnet.preprocessors import Annotate, Preprocessor, detect, find_preprocessor
from sdapi.engine.params import ControlNetParams
from sdapi.errors import InvalidRequest
from sdapi.images import decode_image
from sdapi.protocol.controlnet import ControlNetUnitRequest

SCRIPT_NAME = "controlnet"
CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
HR_OPTIONS = ("Both", "Low res only", "High res only")
INFOTEXT_FIELDS = ("module", "model", "weight", "resize_mode", "processor_res", "threshold_a", "threshold_b",
                   "guidance_start", "guidance_end", "pixel_perfect", "control_mode")


def _choice(value: Any, names: tuple[str, ...], field_name: str) -> str:
    """An enum field given by name or index."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str) and value in names:
        return value
    raise InvalidRequest(f"ControlNet unit {field_name} {value!r} is not one of {', '.join(names)} (or 0 to "
                         f"{len(names) - 1})")


@dataclass
class Unit:
    """One enabled unit, checked (the extension's ``ControlNetUnit`` after validation)."""

    module: str
    preprocessor: Preprocessor
    model: str
    weight: float
    image: Any
    mask: Any
    resize_mode: str
    processor_res: float
    threshold_a: float
    threshold_b: float
    guidance_start: float
    guidance_end: float
    pixel_perfect: bool
    control_mode: str
    hr_option: str
    save_detected_map: bool

    def infotext(self) -> str:
        """The extension's ``ControlNetUnit.serialize``: ``Field Name: value`` pairs."""
        return ", ".join(f"{' '.join(w.capitalize() for w in name.split('_'))}: {getattr(self, name)}"
                         for name in INFOTEXT_FIELDS)


def script_args(alwayson_scripts: dict | None) -> list | None:
    """The ControlNet script's ``args`` (its title matched case-insensitively, as A1111 finds scripts), or
    ``None`` when the request has no ControlNet entry."""
    for name, entry in (alwayson_scripts or {}).items():
        if str(name).lower() == SCRIPT_NAME:
            args = entry.get("args", []) if isinstance(entry, dict) else None
            if not isinstance(args, list):
                raise InvalidRequest("alwayson_scripts.controlnet.args must be a list of units")
            return args
    return None


def _merged_aliases(raw: dict) -> dict:
    """The extension's old field names mapped onto the current ones (both given is an error)."""
    values = dict(raw)
    for alias, key in (("guidance", "guidance_end"), ("lowvram", "low_vram"), ("input_image", "image"),
                       ("mask_image", "mask")):
        if values.get(alias) is not None:
            if values.get(key) not in (None, ""):
                raise InvalidRequest(f"Conflict of field '{alias}' and '{key}'")
            values[key] = values.pop(alias)
    return values


def read_units(alwayson_scripts: dict | None) -> list[Unit]:
    """The request's enabled ControlNet units, checked.

    Raises:
        InvalidRequest: a malformed unit, an unknown module, a value out of range, too many units.
    """
    args = script_args(alwayson_scripts)
    if not args:
        return []
    if len(args) > MAX_CONTROLNET_UNITS:
        raise InvalidRequest(f"{len(args)} ControlNet units exceed this server's limit of {MAX_CONTROLNET_UNITS}")
    units = []
    for index, raw in enumerate(args):
        if not isinstance(raw, dict):
            raise InvalidRequest(f"ControlNet unit {index} must be an object")
        try:
            req = ControlNetUnitRequest(**_merged_aliases(raw))
        except ValidationError as exc:
            raise InvalidRequest(f"ControlNet unit {index}: {exc.errors()[0]['msg']}") from exc
        if req.enabled:
            units.append(_checked(req))
    return units


def _checked(req: ControlNetUnitRequest) -> Unit:
    preprocessor = find_preprocessor(req.module)
    if preprocessor is None:
        raise InvalidRequest(f"module({req.module}) not found in supported modules.")
    if not 0.0 <= req.weight <= 2.0:
        raise InvalidRequest(f"ControlNet unit weight {req.weight} must lie in [0, 2]")
    for name in ("guidance_start", "guidance_end"):
        if not 0.0 <= getattr(req, name) <= 1.0:
            raise InvalidRequest(f"ControlNet unit {name} {getattr(req, name)} must lie in [0, 1]")
    if req.guidance_start > req.guidance_end:
        raise InvalidRequest(f"guidance_start({req.guidance_start}) > guidance_end({req.guidance_end})")
    resize_mode = resize_mode_name(req.resize_mode)
    if resize_mode is None:
        raise InvalidRequest(f"ControlNet unit resize_mode {req.resize_mode!r} is not Just Resize, Crop and Resize "
                             "or Resize and Fill (or 0 to 2)")
    return Unit(module=req.module, preprocessor=preprocessor, model=req.model or "None", weight=req.weight,
                image=None if req.image == "" else req.image, mask=req.mask, resize_mode=resize_mode,
                # The extension's processor_res is an int field; a default stays as the table writes it.
                processor_res=preprocessor.resolution.checked(int(req.processor_res)),
                threshold_a=preprocessor.slider_1.checked(req.threshold_a),
                threshold_b=preprocessor.slider_2.checked(req.threshold_b),
                guidance_start=req.guidance_start, guidance_end=req.guidance_end, pixel_perfect=req.pixel_perfect,
                control_mode=_choice(req.control_mode, CONTROL_MODES, "control_mode"),
                hr_option=_choice(req.hr_option, HR_OPTIONS, "hr_option"), save_detected_map=req.save_detected_map)


def _decode_array(value: Any, what: str) -> np.ndarray:
    """A base64 image as ``H x W x C`` uint8 (C 1, 3 or 4 kept as sent)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"ControlNet {what} must be a base64 image")
    image = decode_image(value)
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return np.array(image, dtype=np.uint8)


def unit_input(unit: Unit) -> np.ndarray | None:
    """The unit's own input (``H x W x 3``), or ``None`` when it has none: its image, or the drawn mask when the
    mask is neither (almost) empty nor (almost) full."""
    image, mask = unit.image, unit.mask
    if isinstance(image, dict):
        image, mask = image.get("image"), image.get("mask")
    elif isinstance(image, (list, tuple)):
        if len(image) == 1 and isinstance(image[0], dict):
            image, mask = image[0].get("image"), image[0].get("mask")
        elif len(image) == 2 and not isinstance(image[0], dict):
            image, mask = image
        else:
            raise InvalidRequest("a ControlNet unit takes one input image (several are for IP-Adapter units)")
    if image in (None, ""):
        return None
    rgb = hwc3(_decode_array(image, "image"))
    if mask in (None, ""):
        return rgb
    alpha = hwc3(_decode_array(mask, "mask"))[:, :, 0]
    if alpha.shape != rgb.shape[:2]:
        raise InvalidRequest(f"image shape ({rgb.shape[:2]}) not aligned with mask shape ({alpha.shape})")
    if (alpha <= 5).all() or (alpha >= 250).all():
        return rgb
    return hwc3(alpha)  # the extension's "canvas scribble mode"


@dataclass
class ResolvedControl:
    """A request's ControlNet units made ready: the engine's units, the detected maps to append, the infotext."""

    params: list[ControlNetParams] = field(default_factory=list)
    maps: list[Image.Image] = field(default_factory=list)
    infotext: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ControlTarget:
    """Where the maps go: the generation size, the hires fix's size (``None``: no hires fix), and img2img's first
    init image with its resize mode (``None`` for txt2img)."""

    width: int
    height: int
    hires: tuple[int, int] | None = None
    init_image: Image.Image | None = None
    init_resize_mode: int = 0


def _latent_aligned(value: int) -> int:
    return (int(value) // 8) * 8


def resolve_units(units: list[Unit], target: ControlTarget, find_model: Callable[[str], Path | None],
                  keep_maps: bool, annotate: Annotate | None = None) -> ResolvedControl:
    """The units' engine parameters, maps and infotext.

    Args:
        find_model: the catalog's lookup of a unit's ``model``.
        keep_maps: append the detected maps (not ``control_net_no_detectmap``).
        annotate: runs model-based preprocessors' networks (``None``: they are refused).

    Raises:
        InvalidRequest: no ControlNet model chosen or found, no input image.
        AnnotatorMissing: a model-based preprocessor that cannot run (its files, or its network).
    """
    resolved = ResolvedControl()
    for index, unit in enumerate(units):
        resolved.infotext[f"ControlNet {index}"] = unit.infotext()
    height, width = _latent_aligned(target.height), _latent_aligned(target.width)
    for unit in units:
        if unit.model in (None, "", "None"):
            raise InvalidRequest("You have not selected any ControlNet Model.")
        path = find_model(unit.model)
        if path is None:
            raise InvalidRequest(f"model not found: {unit.model}")
        image, resize_mode = unit_input(unit), unit.resize_mode
        if image is None and target.init_image is not None:
            image = hwc3(np.array(target.init_image.convert("RGB"), dtype=np.uint8))
            resize_mode = resize_mode_name(target.init_resize_mode) or resize_mode
        if image is None:
            raise InvalidRequest("controlnet is enabled but no input image is given")
        resolution = unit.processor_res
        if unit.pixel_perfect:
            resolution = pixel_perfect_resolution(image, height, width, resize_mode)
        detected = detect(unit.preprocessor, image, resolution, unit.threshold_a, unit.threshold_b, annotate)
        hires_hint = None
        if target.hires is not None:
            hires_w, hires_h = (_latent_aligned(v) for v in target.hires)
            hires_map = fit_map(detected, resize_mode, hires_h, hires_w)
            hires_hint = Image.fromarray(hires_map) if (hires_w, hires_h) != (width, height) else None
            if unit.save_detected_map and keep_maps:
                resolved.maps.append(Image.fromarray(hires_map))
        hint = fit_map(detected, resize_mode, height, width)
        if unit.save_detected_map and keep_maps:
            resolved.maps.append(Image.fromarray(hint))
        mode = unit.control_mode
        resolved.params.append(ControlNetParams(
            model=path, hint=Image.fromarray(hint), hires_hint=hires_hint, weight=float(unit.weight),
            guidance_start=float(unit.guidance_start), guidance_end=float(unit.guidance_end),
            soft=mode != CONTROL_MODES[0], cond_only=mode == CONTROL_MODES[2],
            hr_option=unit.hr_option if target.hires is not None else HR_OPTIONS[0],
            hires_soft="canny" in unit.module or "mlsd" in unit.module))
    return resolved
