"""Detect the Stable Diffusion family of an original-layout checkpoint.

diffusers' own detector keys on layer-specific names and widths (for example
the width of ``attn2.to_k`` or the presence of resblock 9 of the SDXL text
encoder), so tiny test models fool it. We look at key *prefixes* instead,
which are the same at every model size:

=====================================  =====================
key prefix                             family
=====================================  =====================
``conditioner.embedders.1.model.``     SDXL base
``conditioner.embedders.0.model.``     SDXL refiner
``cond_stage_model.model.``            SD 2.x (OpenCLIP)
``cond_stage_model.transformer.``      SD 1.x (OpenAI CLIP)
=====================================  =====================

A UNet whose ``input_blocks.0.0.weight`` has 9 input channels is an
inpainting model.

SD 2.x 768-v (v-prediction) and 512-base (epsilon) have identical keys, so the
parameterization cannot be read from the weights. We follow A1111's
convention, in this order:

1. a ``<checkpoint name>.yaml`` next to the checkpoint decides: it is v when
   it says ``parameterization: "v"``, epsilon otherwise;
2. otherwise the file name: it is v when the name contains ``768`` or a
   separate ``v`` token (``sd21-v``, ``768-v-ema``; not ``v2``);
3. otherwise 512 epsilon.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SD15 = "sd15"
SD15_INPAINT = "sd15-inpaint"
SD2 = "sd2"
SD2_V = "sd2-v"
SD2_INPAINT = "sd2-inpaint"
SDXL = "sdxl"
SDXL_INPAINT = "sdxl-inpaint"
SDXL_REFINER = "sdxl-refiner"
UNKNOWN = "unknown"

#: Model types that ship a config in ``sdapi/configs/<type>/`` and are served (the refiner as a main checkpoint too,
#: as A1111 allows).
SUPPORTED_MODEL_TYPES = (SD15, SD2, SD2_V, SDXL, SDXL_REFINER)

#: Inpainting types: their base type's config with a 9-channel UNet input (latent, mask, masked-image latent).
INPAINT_BASE_TYPES = {SD15_INPAINT: SD15, SD2_INPAINT: SD2, SDXL_INPAINT: SDXL}

_UNET_PREFIX = "model.diffusion_model."
_UNET_IN_KEY = "model.diffusion_model.input_blocks.0.0.weight"
_FAMILY_PREFIXES = (  # checked in this order: SDXL base also has embedders.0 (CLIP-L)
    ("conditioner.embedders.1.model.", "sdxl"),
    ("conditioner.embedders.0.model.", "sdxl-refiner"),
    ("cond_stage_model.model.", "sd2"),
    ("cond_stage_model.transformer.", "sd1"),
)
_V_TOKEN_RE = re.compile(r"(?:^|[-_. ])v(?:[-_. ]|$)")


def model_family(keys: Any) -> str:
    """Find the model family from the key prefixes.

    Args:
        keys: an iterable of checkpoint keys.

    Returns:
        ``"sd1"``, ``"sd2"``, ``"sdxl"``, ``"sdxl-refiner"`` or ``"unknown"``
        (also when the file has no ``model.diffusion_model.`` UNet).
    """
    keys = list(keys)
    if not any(k.startswith(_UNET_PREFIX) for k in keys):
        return UNKNOWN
    for prefix, family in _FAMILY_PREFIXES:
        if any(k.startswith(prefix) for k in keys):
            return family
    return UNKNOWN


def unet_in_channels(keys_and_shapes: Mapping[str, Any]) -> int | None:
    """Read the UNet's input channel count from the ``conv_in`` weight shape.

    Args:
        keys_and_shapes: checkpoint key -> tensor shape.

    Returns:
        The number of input channels, or None if the key is missing.
    """
    shape = keys_and_shapes.get(_UNET_IN_KEY)
    if shape is None or len(shape) < 2:
        return None
    return int(shape[1])


def yaml_says_v_prediction(yaml_path: Path) -> bool | None:
    """Read the parameterization from an ldm yaml beside a checkpoint.

    Args:
        yaml_path: the ``.yaml`` file.

    Returns:
        True for ``parameterization: "v"``, False for any other readable yaml,
        None if the file is missing or unreadable.
    """
    try:
        text = yaml_path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = yaml.safe_load(text)
        params = data["model"]["params"]
        return str(params.get("parameterization", "eps")).strip().lower() == "v"
    except Exception:  # not the usual ldm structure: fall back to a plain text search
        return re.search(r"parameterization\s*:\s*[\"']?v[\"']?\s*$", text, re.MULTILINE) is not None


def name_says_v_prediction(path: Path) -> bool:
    """Apply the file-name heuristic for SD 2.x 768-v checkpoints.

    Args:
        path: the checkpoint path.

    Returns:
        True when the stem contains ``768`` or a separate ``v`` token.
    """
    stem = path.stem.lower()
    return "768" in stem or _V_TOKEN_RE.search(stem) is not None


def sd2_is_v_prediction(path: Path | None) -> bool:
    """Decide whether an SD 2.x checkpoint is the 768-v (v-prediction) variant.

    Args:
        path: the checkpoint path, or None when unknown (gives False).

    Returns:
        True for v-prediction, False for epsilon.
    """
    if path is None:
        return False
    path = Path(path)
    from_yaml = yaml_says_v_prediction(path.with_suffix(".yaml"))
    if from_yaml is not None:
        return from_yaml
    return name_says_v_prediction(path)


def detect_model_type(keys_and_shapes: Mapping[str, Any], *, path: Path | None = None) -> str:
    """Detect the model type of an original-layout checkpoint.

    Args:
        keys_and_shapes: checkpoint key -> tensor shape (a tuple or list).
        path: the checkpoint path; only used to tell SD 2.x 768-v from 512-base
            (see the module docstring).

    Returns:
        One of ``"sd15"``, ``"sd15-inpaint"``, ``"sd2"``, ``"sd2-v"``,
        ``"sd2-inpaint"``, ``"sdxl"``, ``"sdxl-inpaint"``, ``"sdxl-refiner"`` or
        ``"unknown"`` (not a Stable Diffusion checkpoint we recognise, e.g. a VAE
        or LoRA file, or an unusual UNet input width).
    """
    family = model_family(keys_and_shapes)
    if family in (UNKNOWN, SDXL_REFINER):
        return family
    channels = unet_in_channels(keys_and_shapes)
    if channels == 9:
        return {"sd1": SD15_INPAINT, "sd2": SD2_INPAINT, "sdxl": SDXL_INPAINT}[family]
    if channels not in (4, None):
        return UNKNOWN  # e.g. instruct-pix2pix (8 channels)
    if family == "sd1":
        return SD15
    if family == "sdxl":
        return SDXL
    return SD2_V if sd2_is_v_prediction(path) else SD2
