"""Face points for the focal crop, from the Haar cascades that ship inside the opencv wheel (nothing is downloaded).

A1111 prefers a YuNet DNN it downloads and falls back to these cascades; sdapi never downloads, so the cascades are
the detector. They are tried in order and the first that finds anything wins.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sdapi.dataset.focal import PointOfInterest


@dataclass(frozen=True)
class Cascade:
    """One cascade to try.

    Args:
        filename: file in ``cv2.data.haarcascades``.
        min_size: the smallest hit, as a share of the image's short side.
    """

    filename: str
    min_size: float


CASCADES = (
    Cascade("haarcascade_eye.xml", 0.01),
    Cascade("haarcascade_frontalface_default.xml", 0.05),
    Cascade("haarcascade_profileface.xml", 0.05),
    Cascade("haarcascade_frontalface_alt.xml", 0.05),
    Cascade("haarcascade_frontalface_alt2.xml", 0.05),
    Cascade("haarcascade_frontalface_alt_tree.xml", 0.05),
    Cascade("haarcascade_eye_tree_eyeglasses.xml", 0.05),
    Cascade("haarcascade_upperbody.xml", 0.05),
)
"""A1111's order: eyes first (small hits), then faces, profiles, glasses and finally an upper body."""


@functools.lru_cache(maxsize=None)
def _classifier(filename: str):
    import cv2

    path = Path(cv2.data.haarcascades) / filename
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise FileNotFoundError(f"OpenCV cascade {path} is missing (opencv-python-headless 5 dropped them; use <5)")
    return classifier


def face_points(image: Image.Image) -> list[PointOfInterest]:
    """Centres of the hits of the first cascade that finds anything, each weighted ``1/hits``.

    Args:
        image: the RGB image being cropped (already scaled to the crop).
    """
    import cv2

    # A1111 converts its RGB array with BGR weights; kept, so the same images give the same hits.
    gray = cv2.cvtColor(np.array(image), cv2.COLOR_BGR2GRAY)
    for cascade in CASCADES:
        side = int(min(image.width, image.height) * cascade.min_size)
        hits = _classifier(cascade.filename).detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=7, minSize=(side, side), flags=cv2.CASCADE_SCALE_IMAGE)
        if len(hits) > 0:
            return [PointOfInterest((x + x + w) // 2, (y + y + h) // 2, size=w, weight=1 / len(hits))
                    for x, y, w, h in hits]
    return []
