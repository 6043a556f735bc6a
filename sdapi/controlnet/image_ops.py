"""The extension's image helpers, rebuilt with numpy/OpenCV: channel fixing, the preprocessors' resize with edge
padding, and the control map resize that keeps binary and one-pixel-edge maps crisp (Lvmin Zhang's
``high_quality_resize`` with non-maximum suppression and hit-or-miss thinning)."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def hwc3(x: np.ndarray) -> np.ndarray:
    """A uint8 image as ``H x W x 3``: grey repeated, alpha composited over white (the annotators' ``HWC3``)."""
    if x.ndim == 2:
        x = x[:, :, None]
    channels = x.shape[2]
    if channels == 3:
        return x
    if channels == 1:
        return np.concatenate([x, x, x], axis=2)
    color = x[:, :, :3].astype(np.float32)
    alpha = x[:, :, 3:4].astype(np.float32) / 255.0
    return (color * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)


def pad64(x: int) -> int:
    """How much to add to ``x`` to reach the next multiple of 64."""
    return int(np.ceil(float(x) / 64.0) * 64 - x)


def resize_with_pad(image: np.ndarray, resolution: float) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The image scaled so its short side is ``resolution`` (cubic up, area down), edge-padded to multiples of 64;
    and the function that cuts a result back to the scaled size."""
    image = hwc3(image)
    h, w = image.shape[:2]
    k = float(resolution) / float(min(h, w))
    target_h, target_w = int(np.round(float(h) * k)), int(np.round(float(w) * k))
    resized = cv2.resize(image, (target_w, target_h), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    padded = np.pad(resized, [[0, pad64(target_h)], [0, pad64(target_w)], [0, 0]], mode="edge")

    def remove_pad(result: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(result[:target_h, :target_w]).copy()

    return np.ascontiguousarray(padded), remove_pad


def _rotations(kernels: list[list[list[int]]]) -> list[np.ndarray]:
    """Each kernel in its four right-angle rotations, rotation by rotation."""
    raw = [np.array(k, dtype=np.int32) for k in kernels]
    return [np.rot90(k, k=turn, axes=(0, 1)) for turn in range(4) for k in raw]


# Hit-or-miss patterns (1 foreground, -1 background, 0 either) that peel edges down to one pixel, and the ones
# that prune the spurs thinning leaves.
_THIN = _rotations([[[-1, -1, -1], [0, 1, 0], [1, 1, 1]], [[0, -1, -1], [1, 1, -1], [0, 1, 0]]])
_PRUNE = _rotations([[[-1, -1, -1], [-1, 1, -1], [0, 0, -1]], [[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]]])


def _peel(x: np.ndarray, kernels: list[np.ndarray]) -> bool:
    """Clear every pixel some kernel matches, kernel after kernel (in place); whether any was cleared."""
    changed = False
    for kernel in kernels:
        hits = np.where(cv2.morphologyEx(x, cv2.MORPH_HITMISS, kernel) > 127)
        x[hits] = 0
        changed = changed or hits[0].shape[0] > 0
    return changed


def thin_edges(x: np.ndarray, prune: bool = True) -> np.ndarray:
    """Thin a binary map to one-pixel edges (at most 32 rounds), then prune spurs once if asked."""
    for _ in range(32):
        if not _peel(x, _THIN):
            break
    if prune:
        _peel(x, _PRUNE)
    return x


def edge_nms(x: np.ndarray) -> np.ndarray:
    """Keep the pixels that are maxima along some direction (horizontal, vertical, both diagonals)."""
    kept = np.zeros_like(x)
    for kernel in ([[0, 0, 0], [1, 1, 1], [0, 0, 0]], [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
                   [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]]):
        np.putmask(kept, cv2.dilate(x, kernel=np.array(kernel, dtype=np.uint8)) == x, x)
    return kept


def map_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A control map resized to ``size`` (``(width, height)``) keeping its character: few-colour maps (segmentation)
    nearest-neighbour, binary ones re-thresholded (Otsu) and, when they are one-pixel edges, thinned again."""
    if x.shape[0] == size[1] and x.shape[1] == size[0]:
        return x
    smaller = size[0] * size[1] < x.shape[0] * x.shape[1]
    bigger = size[0] * size[1] > x.shape[0] * x.shape[1]
    colours = len(np.unique(x.reshape(-1, x.shape[2]), axis=0))
    binary = one_pixel_edges = False
    if colours == 2:
        binary = bool(np.min(x) < 16 and np.max(x) > 240)
        if binary:
            opened = cv2.dilate(cv2.erode(x, np.ones((3, 3), np.uint8), iterations=1), np.ones((3, 3), np.uint8),
                                iterations=1)
            one_pixel_edges = np.where(opened < x)[0].shape[0] * 2 > np.where(x > 127)[0].shape[0]
    if 2 < colours < 200:
        interpolation = cv2.INTER_NEAREST
    elif smaller:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_CUBIC
    y = cv2.resize(x, size, interpolation=interpolation)
    if binary:
        y = np.mean(y.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
        if one_pixel_edges:
            y = edge_nms(y)
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            y = thin_edges(y, prune=bigger)
        else:
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        y = np.stack([y] * 3, axis=2)
    return y
