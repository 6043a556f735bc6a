"""A1111's img2img colour correction, rebuilt without scikit-image and blendmodes: pinned against their output.

The expected pixels were computed once with A1111 v1.2.1's ``apply_color_correction`` on scikit-image 0.19.2 and
blendmodes 2022 (its pinned versions); over 20 random image pairs the two agreed exactly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from sdapi.color_correction import apply_color_correction, correction_target, luminosity_blend, match_histograms

A1111_RESULT = [
    [[249, 253, 255], [240, 244, 247], [231, 235, 238], [220, 227, 229]],
    [[213, 217, 220], [202, 209, 211], [193, 200, 202], [186, 190, 193]],
    [[177, 181, 184], [168, 172, 174], [159, 163, 165], [151, 154, 157]],
    [[140, 146, 148], [132, 136, 138], [122, 128, 130], [113, 118, 122]],
]


def test_matches_a1111s_libraries_on_a_pinned_case():
    init = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5)
    image = Image.fromarray(255 - np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 3)
    assert np.asarray(apply_color_correction(correction_target(init), image)).tolist() == A1111_RESULT


def test_histogram_matching_takes_the_reference_values_and_truncates():
    source = np.array([[[0], [10], [20], [30]]], dtype=np.uint8)
    reference = np.array([[[100], [101], [150], [200]]], dtype=np.uint8)
    assert match_histograms(source, reference).ravel().tolist() == [100, 101, 150, 200]
    halves = np.array([[[0], [0], [10], [10]]], dtype=np.uint8)
    # Quantiles 0.5 and 1.0 fall on 101 and 200 exactly; values between are interpolated then truncated.
    assert match_histograms(halves, reference).ravel().tolist() == [101, 101, 200, 200]


def test_luminosity_blend_keeps_the_foregrounds_luma_and_stays_in_gamut():
    rng = np.random.default_rng(1)
    background, foreground = rng.random((8, 8, 3)), rng.random((8, 8, 3))
    out = luminosity_blend(background, foreground)
    luma = lambda c: c[..., 0] * 0.299 + c[..., 1] * 0.587 + c[..., 2] * 0.114  # noqa: E731
    assert np.allclose(luma(out), luma(foreground)) and out.min() >= -1e-9 and out.max() <= 1 + 1e-9
