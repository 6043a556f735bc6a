"""Hands: square boxes placed from a body's arms (OpenPose's hand detector), and 21 points found in each box."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter, label
from torch import nn

from sdapi.engine.annotators.openpose.body import Peak
from sdapi.engine.annotators.openpose.resize import maps_to_size, network_input, pad_to_stride, resize_to

# The box centre lies beyond the wrist by this fraction of the forearm.
WRIST_OVERSHOOT = 0.33
MIN_BOX = 20
# The crop is searched at these sizes (the network's 368 px box times 0.5 ... 2) and the heatmaps averaged at
# 128 x 128.
SEARCH_SIZES = tuple(s * 368 for s in (0.5, 1.0, 1.5, 2.0))
HEATMAP_SIZE = 128
HAND_POINTS = 21
PRE_BLUR_SIGMA = 0.8
PEAK_SIGMA = 3
PEAK_THRESHOLD = 0.05
# Shoulder, elbow, wrist parts of each arm; the extension's left hand (parts 5-7) comes first.
ARMS = ((5, 6, 7, True), (2, 3, 4, False))


def hand_boxes(parts: list[Peak | None], height: int, width: int) -> list[tuple[int, int, int, bool]]:
    """``(left, top, size, is_left)`` per arm whose three parts were found, for boxes of at least ``MIN_BOX``."""
    boxes = []
    for shoulder, elbow, wrist, is_left in ARMS:
        if parts[shoulder] is None or parts[elbow] is None or parts[wrist] is None:
            continue
        (x1, y1), (x2, y2), (x3, y3) = ((parts[i].x, parts[i].y) for i in (shoulder, elbow, wrist))
        x = x3 + WRIST_OVERSHOOT * (x3 - x2)
        y = y3 + WRIST_OVERSHOOT * (y3 - y2)
        forearm = math.sqrt((x3 - x2) ** 2 + (y3 - y2) ** 2)
        upper_arm = math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
        size = 1.5 * max(forearm, 0.9 * upper_arm)
        x = max(x - size / 2, 0)
        y = max(y - size / 2, 0)
        size = min(width - x if x + size > width else size, height - y if y + size > height else size)
        if size >= MIN_BOX:
            boxes.append((int(x), int(y), int(size), is_left))
    return boxes


def _heatmaps(net: nn.Module, crop: np.ndarray, device: torch.device) -> np.ndarray:
    """The hand network's heatmaps of a BGR crop, averaged over ``SEARCH_SIZES``, ``128 x 128 x 22`` float64."""
    blurred = cv2.GaussianBlur(crop, (0, 0), PRE_BLUR_SIGMA)
    total = np.zeros((HEATMAP_SIZE, HEATMAP_SIZE, HAND_POINTS + 1))
    for size in SEARCH_SIZES:
        padded, pad_h, pad_w = pad_to_stride(resize_to(blurred, size, size))
        with torch.inference_mode():
            out = net(torch.from_numpy(network_input(padded)).to(device)).cpu().numpy()
        total += maps_to_size(out, padded.shape[:2], pad_h, pad_w, HEATMAP_SIZE, HEATMAP_SIZE) / len(SEARCH_SIZES)
    return total


def hand_points(heatmaps: np.ndarray, height: int, width: int) -> list[tuple[int, int]]:
    """Per hand point, the maximum of the heaviest blob of its heatmap, scaled to the crop; ``(0, 0)`` when the
    smoothed heatmap nowhere exceeds ``PEAK_THRESHOLD``."""
    points = []
    for part in range(HAND_POINTS):
        raw = heatmaps[:, :, part].copy()
        blobs, count = label(gaussian_filter(raw, sigma=PEAK_SIGMA) > PEAK_THRESHOLD, structure=np.ones((3, 3)))
        if count == 0:
            points.append((0, 0))
            continue
        heaviest = 1 + int(np.argmax([raw[blobs == i].sum() for i in range(1, count + 1)]))
        raw[blobs != heaviest] = 0
        row, col = np.unravel_index(np.argmax(raw), raw.shape)
        points.append((int(float(col) * float(width) / HEATMAP_SIZE), int(float(row) * float(height) / HEATMAP_SIZE)))
    return points


def find_hand(net: nn.Module, crop: np.ndarray, device: torch.device) -> list[tuple[int, int]]:
    """The 21 hand points (pixels in ``crop``, BGR uint8)."""
    return hand_points(_heatmaps(net, crop, device), crop.shape[0], crop.shape[1])
