"""The resizing and cutting steps of A1111's preprocess: crop-and-resize, split, and auto-sized (multi) crop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from PIL import Image

from sdapi.resize import CROP_AND_RESIZE, resize_image


def crop_and_resize(image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111's ``resize_image`` mode 1: scale to cover ``width``x``height`` (LANCZOS) and centre-crop the excess.

    Args:
        image: an RGB image.
        width, height: the output size.
    """
    return resize_image(CROP_AND_RESIZE, image, width, height)


def split_ratio(image: Image.Image, width: int, height: int) -> tuple[float, bool]:
    """How far ``image`` is from the target aspect, as A1111 measures it for splitting.

    Returns:
        ``(ratio, along_width)``: ratio < 1 means longer than the target along the long axis; ``along_width`` is
        True for images at least as wide as tall (they are cut left to right).
    """
    if image.height > image.width:
        return (image.width * height) / (image.height * width), False
    return (image.height * width) / (image.width * height), True


def split_image(image: Image.Image, along_width: bool, width: int, height: int,
                overlap_ratio: float) -> Iterator[Image.Image]:
    """Cut an oversized image into evenly spaced, overlapping target-sized tiles along its long axis.

    The image is first scaled so its short side fits the target; the tile count is
    ``ceil((L - t*overlap) / (t*(1-overlap)))`` for scaled length ``L`` and tile length ``t``.

    Args:
        image: the source image.
        along_width: cut left to right (wide images) instead of top to bottom.
        width, height: the tile size.
        overlap_ratio: the share of a tile its neighbour covers again, 0..0.9.
    """
    if along_width:
        from_w, from_h, to_w, to_h = image.height, image.width, height, width
    else:
        from_w, from_h, to_w, to_h = image.width, image.height, width, height
    length = from_h * to_w // from_w
    # PIL's default resampling, as A1111 uses here (unlike the LANCZOS of its other resizes).
    image = image.resize((length, to_w) if along_width else (to_w, length))
    count = math.ceil((length - to_h * overlap_ratio) / (to_h * (1.0 - overlap_ratio)))
    step = (length - to_h) / (count - 1)
    for i in range(count):
        offset = int(step * i)
        yield image.crop((offset, 0, offset + to_h, to_w) if along_width else (0, offset, to_w, offset + to_h))


@dataclass(frozen=True)
class MulticropBounds:
    """A1111's "auto-sized crop" settings; the defaults are its UI's.

    Args:
        min_dim, max_dim: candidate sides, multiples of 64 from ``min_dim``.
        min_area, max_area: candidate area bounds in pixels.
        objective: ``Maximize area`` or ``Minimize error``.
        threshold: the largest aspect error accepted, ``1 - min(r, 1/r)``.
    """

    min_dim: int = 384
    max_dim: int = 768
    min_area: int = 64 * 64
    max_area: int = 640 * 640
    objective: str = "Maximize area"
    threshold: float = 0.1


def multicrop_size(image_w: int, image_h: int, bounds: MulticropBounds) -> tuple[int, int] | None:
    """The best candidate size for an image, or None when none is within the error threshold."""

    def error(w: int, h: int) -> float:
        r = (image_w / image_h) / (w / h)
        return 1 - (r if r < 1 else 1 / r)

    sides = range(bounds.min_dim, bounds.max_dim + 1, 64)
    candidates = [(w, h) for w in sides for h in sides
                  if bounds.min_area <= w * h <= bounds.max_area and error(w, h) <= bounds.threshold]
    if not candidates:
        return None
    if bounds.objective == "Maximize area":
        return max(candidates, key=lambda wh: (wh[0] * wh[1], -error(*wh)))
    return max(candidates, key=lambda wh: (-error(*wh), wh[0] * wh[1]))


def center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """Centre-crop to the aspect of ``width``x``height`` (fractional box) and resize there with LANCZOS."""
    iw, ih = image.size
    if ih / height < iw / width:
        sw = width * ih / height
        box = ((iw - sw) / 2, 0, iw - (iw - sw) / 2, ih)
    else:
        sh = height * iw / width
        box = (0, (ih - sh) / 2, iw, ih - (ih - sh) / 2)
    return image.resize((width, height), Image.Resampling.LANCZOS, box)


def multicrop(image: Image.Image, bounds: MulticropBounds) -> Image.Image | None:
    """A1111's auto-sized crop: the chosen candidate size, or None when the image fits no candidate."""
    size = multicrop_size(image.width, image.height, bounds)
    return center_crop(image, *size) if size is not None else None
