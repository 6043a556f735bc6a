"""What A1111 v1.2.1's two outpainting scripts share: their ``direction`` argument and how far the canvas grows.

Each chosen side asks for ``pixels``; the canvas is the image plus those, rounded up to a multiple of 64 on each
axis, and the extra is split between two opposite sides in proportion to what they asked for (the first side
gets the floor of its share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdapi.errors import InvalidRequest
from sdapi.settings import Limits

DIRECTIONS = ("left", "right", "up", "down")


@dataclass(frozen=True)
class Expansion:
    """Pixels added on each side, and the canvas size they make."""

    left: int
    right: int
    up: int
    down: int
    width: int
    height: int

    @property
    def sides(self) -> int:
        """How many sides grow."""
        return sum(1 for value in (self.left, self.right, self.up, self.down) if value > 0)


def chosen(direction, side: str) -> bool:
    """Whether ``side`` is chosen (A1111 tests ``side in direction``, so a text such as "left,up" works too)."""
    return side in direction


def expansion(width: int, height: int, pixels: int, direction) -> Expansion:
    """The sides and canvas for an image of ``width x height`` (A1111's arithmetic in both scripts' ``run``)."""
    left, right, up, down = (pixels if chosen(direction, side) else 0 for side in DIRECTIONS)
    target_w = math.ceil((width + left + right) / 64) * 64
    target_h = math.ceil((height + up + down) / 64) * 64
    if left > 0:
        left = left * (target_w - width) // (left + right)
    if right > 0:
        right = target_w - width - left
    if up > 0:
        up = up * (target_h - height) // (up + down)
    if down > 0:
        down = target_h - height - up
    return Expansion(left, right, up, down, target_w, target_h)


def check_expansion(pixels: int, mask_blur: int, grown: Expansion, limits: Limits) -> None:
    """Refuse arguments that cannot work or a canvas beyond the server's bounds.

    Raises:
        InvalidRequest: naming the argument or the canvas size.
    """
    if pixels < 1:
        raise InvalidRequest(f"script_args pixels must be at least 1, got {pixels}")
    if mask_blur < 0:
        raise InvalidRequest(f"script_args mask_blur must be 0 or more, got {mask_blur}")
    if max(grown.width, grown.height) > limits.max_side:
        raise InvalidRequest(f"outpainting makes a {grown.width}x{grown.height} canvas, more than this server's "
                             f"limit of {limits.max_side} pixels per side")
    if grown.width * grown.height > limits.max_pixels:
        raise InvalidRequest(f"outpainting makes a {grown.width}x{grown.height} canvas, more than this server's "
                             f"limit of {limits.max_pixels} pixels")
