"""A detected map fitted to the generation size, as the extension's ``detectmap_proc`` does, and its
``pixel_perfect`` processor resolution."""

from __future__ import annotations

import numpy as np

from sdapi.controlnet.image_ops import hwc3, map_resize

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL = "Just Resize", "Crop and Resize", "Resize and Fill"
RESIZE_MODES = (JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL)
# The extension's older names for the two fitting modes.
RESIZE_MODE_ALIASES = {"Inner Fit (Scale to Fit)": CROP_AND_RESIZE, "Outer Fit (Shrink to Fit)": RESIZE_AND_FILL,
                       "Scale to Fit (Inner Fit)": CROP_AND_RESIZE, "Envelope (Outer Fit)": RESIZE_AND_FILL}


def resize_mode_name(value) -> str | None:
    """A resize mode by name, alias or number (0, 1, 2; A1111's 3, latent resize, is "Just Resize"); ``None`` when
    unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value < 0:
            return None
        return RESIZE_MODES[value] if value < len(RESIZE_MODES) else JUST_RESIZE
    if isinstance(value, str):
        value = RESIZE_MODE_ALIASES.get(value, value)
        return value if value in RESIZE_MODES else None
    return None


def fit_map(detected: np.ndarray, mode: str, height: int, width: int) -> np.ndarray:
    """The map at ``width`` x ``height``: stretched, scaled to cover and centre-cropped, or scaled to fit and
    centred on its border's median colour."""
    detected = hwc3(detected)
    if mode == JUST_RESIZE:
        return map_resize(detected, (width, height))
    old_h, old_w = float(detected.shape[0]), float(detected.shape[1])
    k0, k1 = float(height) / old_h, float(width) / old_w
    if mode == RESIZE_AND_FILL:
        k = min(k0, k1)
        borders = np.concatenate([detected[0, :, :], detected[-1, :, :], detected[:, 0, :], detected[:, -1, :]])
        background = np.tile(np.median(borders, axis=0).astype(detected.dtype)[None, None], [height, width, 1])
        resized = map_resize(detected, (int(np.round(old_w * k)), int(np.round(old_h * k))))
        new_h, new_w = resized.shape[:2]
        top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
        background[top:top + new_h, left:left + new_w] = resized
        return np.ascontiguousarray(background)
    k = max(k0, k1)
    resized = map_resize(detected, (int(np.round(old_w * k)), int(np.round(old_h * k))))
    new_h, new_w = resized.shape[:2]
    top, left = max(0, (new_h - height) // 2), max(0, (new_w - width) // 2)
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


def pixel_perfect_resolution(image: np.ndarray, height: int, width: int, mode: str) -> int:
    """The processor resolution that makes the map's short side land on the generation size: the image's short
    side times the smaller scale for "Resize and Fill", the larger otherwise."""
    raw_h, raw_w = image.shape[:2]
    k0, k1 = float(height) / float(raw_h), float(width) / float(raw_w)
    k = min(k0, k1) if mode == RESIZE_AND_FILL else max(k0, k1)
    return int(np.round(k * float(min(raw_h, raw_w))))
