"""The annotator's image and heatmap resizing, and its padding to the networks' stride.

The extension resizes with OpenCV: ``INTER_AREA`` when the size shrinks overall (the sum of height and width),
Lanczos otherwise. Arrays with other than 1 or 3 channels (heatmaps) are resized one channel at a time; that is
kept, so the results are those of the same OpenCV calls.
"""

from __future__ import annotations

import cv2
import numpy as np

# Every OpenPose network downsamples by 8.
STRIDE = 8
# Grey: the value the networks' inputs are padded with (0 after their ``/ 256 - 0.5`` normalisation).
PAD_VALUE = 128


def resize_to(x: np.ndarray, height: float, width: float) -> np.ndarray:
    """``x`` (``H x W`` or ``H x W x C``) resized to ``int(height) x int(width)``."""
    old_h, old_w = x.shape[:2]
    channels = 1 if x.ndim == 2 else x.shape[2]
    if channels not in (1, 3):
        return np.stack([resize_to(x[:, :, c], height, width) for c in range(channels)], axis=2)
    shrinks = float(height + width) / float(old_h + old_w) < 1
    return cv2.resize(x, (int(width), int(height)), interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LANCZOS4)


def resize_by(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` resized by ``factor`` in both directions (the new size truncated)."""
    return resize_to(x, x.shape[0] * factor, x.shape[1] * factor)


def pad_to_stride(image: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``image`` padded at the bottom and right to multiples of ``STRIDE``; with the rows and columns added."""
    pad_h, pad_w = -image.shape[0] % STRIDE, -image.shape[1] % STRIDE
    padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=PAD_VALUE)
    return padded, pad_h, pad_w


def network_input(image: np.ndarray) -> np.ndarray:
    """A ``1 x 3 x H x W`` float32 batch of a uint8 ``H x W x 3`` image, scaled to [-0.5, 0.5)."""
    return np.ascontiguousarray(image.astype(np.float32).transpose(2, 0, 1)[None] / 256 - 0.5)


def maps_to_size(maps: np.ndarray, padded_shape: tuple[int, int], pad_h: int, pad_w: int, height: int,
                 width: int) -> np.ndarray:
    """A network's ``1 x C x h x w`` output as ``height x width x C``: upsampled by the stride, the padding cut off,
    then resized to the wanted size.

    Channel by channel as the extension does, but kept channel-first until the end: stacking the large upsampled
    maps channel-last (as the extension does in between) costs more than the resizing, and changes no value.
    """
    out = []
    for channel in maps[0]:
        channel = resize_by(channel, STRIDE)[:padded_shape[0] - pad_h, :padded_shape[1] - pad_w]
        out.append(resize_to(channel, height, width))
    return np.stack(out, axis=2)
