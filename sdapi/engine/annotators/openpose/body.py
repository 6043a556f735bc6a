"""Body estimation, first half: the body network's heatmaps and part affinity fields, and the part peaks in them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from sdapi.engine.annotators.openpose.resize import maps_to_size, network_input, pad_to_stride, resize_by

# The extension searches one scale only (its list of four has the others commented out): the image's height
# brought to half the network's 368 px box.
BOX_SIZE = 368
SCALE = 0.5
BODY_PARTS = 18
PEAK_THRESHOLD = 0.1
PEAK_SIGMA = 3


@dataclass(frozen=True)
class Peak:
    """One candidate body part: pixel position, heatmap value there, and its index among all peaks."""

    x: int
    y: int
    score: float
    index: int


def body_maps(net: nn.Module, image: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """The heatmaps (``H x W x 19``) and part affinity fields (``H x W x 38``) of a BGR uint8 image, float64."""
    height, width = image.shape[:2]
    factor = SCALE * BOX_SIZE / height
    padded, pad_h, pad_w = pad_to_stride(resize_by(image, factor))
    batch = torch.from_numpy(network_input(padded)).to(device)
    with torch.inference_mode():
        pafs, heatmaps = net(batch)
    size = (padded.shape[:2], pad_h, pad_w, height, width)
    heatmaps = maps_to_size(heatmaps.cpu().numpy(), *size)
    pafs = maps_to_size(pafs.cpu().numpy(), *size)
    return heatmaps.astype(np.float64), pafs.astype(np.float64)


def find_peaks(heatmaps: np.ndarray) -> list[list[Peak]]:
    """Per body part, its local maxima over ``PEAK_THRESHOLD`` in the Gaussian-smoothed heatmap, in row-major order.

    A maximum is >= its four neighbours (zero beyond the border); ties make plateaus give several peaks, as in the
    extension. Scores are read from the unsmoothed heatmap; indices run over all parts.
    """
    peaks: list[list[Peak]] = []
    count = 0
    for part in range(BODY_PARTS):
        raw = heatmaps[:, :, part]
        smooth = gaussian_filter(raw, sigma=PEAK_SIGMA)
        around = np.pad(smooth, 1)
        is_peak = ((smooth >= around[:-2, 1:-1]) & (smooth >= around[2:, 1:-1]) & (smooth >= around[1:-1, :-2])
                   & (smooth >= around[1:-1, 2:]) & (smooth > PEAK_THRESHOLD))
        ys, xs = np.nonzero(is_peak)
        peaks.append([Peak(int(x), int(y), float(raw[y, x]), count + i) for i, (x, y) in enumerate(zip(xs, ys))])
        count += len(xs)
    return peaks
