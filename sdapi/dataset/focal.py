"""The focal point of A1111's auto focal crop: weighted centroids of edge, entropy and face points."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw


@dataclass
class PointOfInterest:
    """A point with a weight (its share of the focal point) and a size (for the debug drawing)."""

    x: float
    y: float
    weight: float = 1.0
    size: float = 10

    def bounding(self, size: float) -> list[float]:
        """The square of side ``size`` centred here, as ``[x0, y0, x1, y1]``."""
        return [self.x - size // 2, self.y - size // 2, self.x + size // 2, self.y + size // 2]


@dataclass(frozen=True)
class FocalWeights:
    """How much each kind of point pulls the crop; a kind with weight 0 is not computed at all.

    The defaults are those of A1111's ``preprocess()`` signature (its UI shows 0.15 for entropy).
    """

    face: float = 0.9
    entropy: float = 0.3
    edges: float = 0.5


@dataclass
class FocalResult:
    """The focal point and the weighted centroid of each kind of point that was found (for the debug image)."""

    point: PointOfInterest
    centroids: dict[str, PointOfInterest] = field(default_factory=dict)
    points: dict[str, list[PointOfInterest]] = field(default_factory=dict)


def corner_points(image: Image.Image) -> list[PointOfInterest]:
    """Up to 100 strong corners (Shi-Tomasi), ignoring the bottom tenth of the image."""
    import cv2

    gray = image.convert("L")
    # A naive guard against watermarks, which sit at the bottom and are all corners.
    ImageDraw.Draw(gray).rectangle([0, image.height * 0.9, image.width, image.height], fill="#999")
    found = cv2.goodFeaturesToTrack(np.array(gray), maxCorners=100, qualityLevel=0.04,
                                    minDistance=min(gray.width, gray.height) * 0.06, useHarrisDetector=False)
    if found is None:
        return []
    return [PointOfInterest(*point.ravel(), size=4, weight=1 / len(found)) for point in found]


def window_entropy(image: Image.Image) -> float:
    """A1111's entropy score of a window: over the 1-bit image, ``-sum(log2(p))`` of its two histogram bins.

    Not Shannon's ``-sum(p log p)``: kept as A1111 computes it, since it decides which window wins.
    """
    band = np.asarray(image.convert("1"), dtype=np.uint8)
    # A 1-bit image holds only 0 and 1: counting them is A1111's 255-bin histogram, several times faster.
    hist = np.bincount(band.ravel(), minlength=2)
    hist = hist[hist > 0]
    return float(-np.log2(hist / hist.sum()).sum())


def entropy_points(image: Image.Image, crop_width: int, crop_height: int) -> list[PointOfInterest]:
    """The centre of the crop-sized window, slid 4 px at a time along the long axis, with the highest entropy.

    Square images have nowhere to slide and give no point.
    """
    if image.width == image.height:
        return []
    along_x = image.width > image.height
    start, end = (0, 2) if along_x else (1, 3)
    limit = image.width if along_x else image.height
    window = [0, 0, crop_width, crop_height]
    best, best_score = list(window), 0.0
    while window[end] < limit:
        score = window_entropy(image.crop(tuple(window)))
        if score > best_score:
            best_score, best = score, list(window)
        window[start] += 4
        window[end] += 4
    return [PointOfInterest(int(best[0] + crop_width / 2), int(best[1] + crop_height / 2), size=25)]


def centroid(points: list[PointOfInterest]) -> PointOfInterest:
    """The unweighted mean position of ``points``."""
    return PointOfInterest(sum(p.x for p in points) / len(points), sum(p.y for p in points) / len(points))


def weighted_average(points: list[PointOfInterest]) -> PointOfInterest:
    """The weight-averaged position, rounded to pixels; (0, 0) when nothing has weight."""
    weight = sum(p.weight for p in points)
    x = sum(p.x * p.weight for p in points)
    y = sum(p.y * p.weight for p in points)
    return PointOfInterest(round(weight and x / weight), round(weight and y / weight))


PointFinder = Callable[[Image.Image], list[PointOfInterest]]


def focal_point(image: Image.Image, crop_width: int, crop_height: int, weights: FocalWeights,
                find_faces: PointFinder) -> FocalResult:
    """Combine the centroid of each kind of point, weighted by its weight over the kinds that found something.

    Args:
        image: the image, already scaled so the crop fits its short side.
        crop_width, crop_height: the crop size.
        weights: how much faces, entropy and edges count.
        find_faces: the face detector (``sdapi.dataset.faces.face_points``).
    """
    finders: dict[str, tuple[float, Callable[[], list[PointOfInterest]]]] = {
        "edges": (weights.edges, lambda: corner_points(image)),
        "entropy": (weights.entropy, lambda: entropy_points(image, crop_width, crop_height)),
        "face": (weights.face, lambda: find_faces(image)),
    }
    found = {kind: find() for kind, (weight, find) in finders.items() if weight > 0}
    found = {kind: points for kind, points in found.items() if points}
    total = sum(finders[kind][0] for kind in found)
    centroids = {}
    for kind, points in found.items():
        centroids[kind] = centroid(points)
        centroids[kind].weight = finders[kind][0] / total
    return FocalResult(point=weighted_average(list(centroids.values())), centroids=centroids, points=found)
