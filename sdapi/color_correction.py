"""A1111's img2img colour correction (option ``img2img_color_correction``), in numpy and OpenCV.

A1111 v1.2.1 keeps each init image (after resizing, cropping and filling) in CIELAB; after sampling it matches the
result's LAB histogram to it channel by channel (scikit-image 0.19's ``match_histograms``, which writes the matched
values into an array of the image's own ``uint8`` type, so they are truncated), converts back to RGB, and blends that
under the uncorrected result with the "luminosity" mode of the ``blendmodes`` package: the corrected colours take
the uncorrected image's luminosity. The two library functions are rebuilt here from their definitions (neither
package is a dependency); ``tests/unit/test_color_correction.py`` pins known results.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image



def _lum(colours: np.ndarray) -> np.ndarray:
    """BT.601 luma, summed in blendmodes' order (a matrix product rounds differently in the last bit)."""
    return colours[..., 0] * 0.299 + colours[..., 1] * 0.587 + colours[..., 2] * 0.114


def correction_target(image: Image.Image) -> np.ndarray:
    """The colours a result is corrected towards: the init image in CIELAB (A1111's ``setup_color_correction``)."""
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2LAB)


def match_histograms(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each channel of ``image`` remapped so its cumulative histogram follows ``reference``'s (``uint8`` out,
    truncated as scikit-image 0.19 stores it)."""
    matched = np.empty(image.shape, dtype=image.dtype)
    for channel in range(image.shape[-1]):
        matched[..., channel] = _match_channel(image[..., channel], reference[..., channel])
    return matched


def _match_channel(source: np.ndarray, template: np.ndarray) -> np.ndarray:
    values, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    template_values, template_counts = np.unique(template.ravel(), return_counts=True)
    quantiles = np.cumsum(counts) / source.size
    template_quantiles = np.cumsum(template_counts) / template.size
    return np.interp(quantiles, template_quantiles, template_values)[inverse].reshape(source.shape)


def luminosity_blend(background: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """``background``'s colours with ``foreground``'s luminosity (floats in 0..1), clipped into gamut the way
    blendmodes' ``_setLum`` does: towards the luminosity where a channel left 0..1."""
    colours = background + (_lum(foreground) - _lum(background))[..., None]
    lum = _lum(colours)[..., None]
    low = colours.min(axis=2, keepdims=True)
    high = colours.max(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        colours = np.where(low < 0, lum + (colours - lum) * lum / (lum - low), colours)
        colours = np.where(high > 1, lum + (colours - lum) * (1 - lum) / (high - lum), colours)
    return colours


def apply_color_correction(target: np.ndarray, image: Image.Image) -> Image.Image:
    """``image`` corrected towards ``target`` (from :func:`correction_target`), as A1111's
    ``apply_color_correction`` does it."""
    rgb = np.asarray(image.convert("RGB"))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    corrected = cv2.cvtColor(match_histograms(lab, target), cv2.COLOR_LAB2RGB).astype("uint8")
    blended = luminosity_blend(corrected / 255, rgb / 255)
    return Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))
