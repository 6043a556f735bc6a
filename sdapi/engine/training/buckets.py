"""Aspect-ratio buckets (kohya's "ARB"): which training size each image is cropped to.

With buckets on, kohya lists every ``(w, h)`` in steps of ``bucket_reso_steps`` between the min and max side whose
area fits the base resolution's, and puts each image in the bucket of the nearest aspect ratio. With
``bucket_no_upscale`` an image smaller than the base area keeps its own size (rounded down to the step) instead.
Images are then scaled to cover their bucket and centre-cropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Size = tuple[int, int]


@dataclass(frozen=True)
class BucketSpec:
    """The bucket settings of a request.

    Args:
        resolution: the base ``(width, height)``.
        enabled: ``enable_bucket``; off, every image is cropped to ``resolution``.
        min_size, max_size: ``min_bucket_reso`` / ``max_bucket_reso``.
        step: ``bucket_reso_steps``.
        no_upscale: ``bucket_no_upscale``.
    """

    resolution: Size
    enabled: bool = True
    min_size: int = 256
    max_size: int = 1024
    step: int = 64
    no_upscale: bool = True

    @property
    def max_area(self) -> int:
        return self.resolution[0] * self.resolution[1]


def bucket_resolutions(spec: BucketSpec) -> list[Size]:
    """kohya's predefined buckets for a base resolution, sorted."""
    side = int(math.sqrt(spec.max_area) // spec.step) * spec.step
    sizes = {(side, side)}
    width = spec.min_size
    while width <= spec.max_size:
        height = min(spec.max_size, (spec.max_area // width) // spec.step * spec.step)
        if height >= spec.min_size:
            sizes.add((width, height))
            sizes.add((height, width))
        width += spec.step
    return sorted(sizes)


def _round_down(value: float, step: int) -> int:
    return max(step, int(value // step) * step)


def no_upscale_bucket(width: int, height: int, spec: BucketSpec) -> Size:
    """The bucket of an image that must not be enlarged: its own size within the base area, rounded down."""
    scale = min(1.0, math.sqrt(spec.max_area / (width * height)))
    return _round_down(width * scale, spec.step), _round_down(height * scale, spec.step)


def assign_bucket(width: int, height: int, spec: BucketSpec, resolutions: list[Size] | None = None) -> Size:
    """The training size of one image.

    Args:
        width, height: the image's size.
        spec: the bucket settings.
        resolutions: :func:`bucket_resolutions` of ``spec`` (computed when not given).

    Returns:
        ``(bucket width, bucket height)``.
    """
    if not spec.enabled:
        return spec.resolution
    if spec.no_upscale:
        return no_upscale_bucket(width, height, spec)
    resolutions = resolutions or bucket_resolutions(spec)
    aspect = width / height
    return min(resolutions, key=lambda size: abs(size[0] / size[1] - aspect))


def cover_and_crop_box(width: int, height: int, bucket: Size) -> tuple[Size, tuple[int, int, int, int]]:
    """How to fit an image into its bucket: the resized size that covers it, and the centred crop box.

    Returns:
        ``((resized width, resized height), (left, top, right, bottom))``.
    """
    scale = max(bucket[0] / width, bucket[1] / height)
    resized = (max(bucket[0], round(width * scale)), max(bucket[1], round(height * scale)))
    left, top = (resized[0] - bucket[0]) // 2, (resized[1] - bucket[1]) // 2
    return resized, (left, top, left + bucket[0], top + bucket[1])
