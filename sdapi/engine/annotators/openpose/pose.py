"""A detected person as the extension hands it to drawing and JSON: keypoints as fractions of the image size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdapi.engine.annotators.openpose.body import Peak

# (x / width, y / height). The numbers keep the extension's types (float64 for the body, float32 scalars for
# hands and face), because the drawing multiplies them back and truncates, where the last bit can matter.
Point = tuple[float, float]


@dataclass
class Pose:
    """One person: 18 body points (``None``: part not found), and the hands and face when asked for and found.

    A hand or face point the network did not find (or found at column or row 0) is at ``-1 / size``, as in the
    extension.
    """

    body: list[Point | None]
    left_hand: list[Point] | None = None
    right_hand: list[Point] | None = None
    face: list[Point] | None = None


def relative_body(parts: list[Peak | None], height: int, width: int) -> list[Point | None]:
    """Body peaks in pixels to fractions of the image."""
    return [None if p is None else (p.x / float(width), p.y / float(height)) for p in parts]


def relative_points(points: list[tuple[int, int]], left: int, top: int, height: int, width: int) -> list[Point]:
    """Points found in a crop at (``left``, ``top``) to fractions of the image; 0 means "not found" and gives -1."""
    xy = np.array(points, dtype=np.float32).reshape(-1, 2)
    xs = np.where(xy[:, 0] < 1e-6, -1, xy[:, 0] + left) / float(width)
    ys = np.where(xy[:, 1] < 1e-6, -1, xy[:, 1] + top) / float(height)
    return list(zip(xs.astype(np.float32), ys.astype(np.float32)))
