"""The face: a square box placed from the body's nose, eyes and ears, and the face network's points in it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.openpose.body import Peak
from sdapi.engine.annotators.openpose.resize import resize_to

NOSE = 0
# Eyes (14, 15) and ears (16, 17), with how many times the largest nose distance the half box is.
FACE_REACH = ((14, 3.0), (15, 3.0), (16, 1.5), (17, 1.5))
MIN_BOX = 20
INPUT_SIZE = 384
PEAK_THRESHOLD = 0.05


def face_box(parts: list[Peak | None], height: int, width: int) -> tuple[int, int, int] | None:
    """``(left, top, size)`` of the face box, or ``None`` without a nose and an eye or ear, or below ``MIN_BOX``."""
    nose = parts[NOSE]
    if nose is None or all(parts[i] is None for i, _ in FACE_REACH):
        return None
    half = 0.0
    for i, reach in FACE_REACH:
        if parts[i] is not None:
            half = max(half, max(abs(nose.x - parts[i].x), abs(nose.y - parts[i].y)) * reach)
    x = max(nose.x - half, 0)
    y = max(nose.y - half, 0)
    # The extension checks the edges with the half size, not the full one, so the box is hardly ever shrunk and
    # the crop is cut by the image edge instead (not square); kept, as it decides the crop.
    size = min(width - x if x + half > width else half * 2, height - y if y + half > height else half * 2)
    if size < MIN_BOX:
        return None
    return int(x), int(y), int(size)


def face_points(net: nn.Module, crop: np.ndarray, device: torch.device) -> list[tuple[int, int]]:
    """Per face heatmap (all 71, the background's included, as in the extension) whose maximum exceeds
    ``PEAK_THRESHOLD``, the position of that maximum in ``crop`` (BGR uint8); heatmaps without one are left out."""
    height, width = crop.shape[:2]
    batch = torch.from_numpy(resize_to(crop, INPUT_SIZE, INPUT_SIZE)).permute(2, 0, 1)[None] / 256.0 - 0.5
    with torch.inference_mode():
        heatmaps = net(batch.to(device))
        heatmaps = F.interpolate(heatmaps, (height, width), mode="bilinear", align_corners=True).cpu().numpy()[0]
    points = []
    for heatmap in heatmaps:
        if not (heatmap > PEAK_THRESHOLD).any():
            continue
        row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        points.append((int(col), int(row)))
    return points
