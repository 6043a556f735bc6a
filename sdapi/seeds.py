"""A1111's seed vocabulary: ``-1`` means random, and how a request's seed becomes one seed per image."""

from __future__ import annotations

import random

MAX_SEED = 4294967294


def resolve_seed(seed: int | float | None) -> int:
    """A1111's ``get_fixed_seed``: ``None``, ``""`` or ``-1`` become a random seed."""
    if seed is None or seed == "" or seed == -1:
        return int(random.randrange(MAX_SEED))
    return int(seed)


def image_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> tuple[list[int], list[int]]:
    """Per-image seeds and subseeds: ``seed + i``, except that variation keeps every image on ``seed``."""
    seeds = [seed if subseed_strength else seed + i for i in range(count)]
    return seeds, [subseed + i for i in range(count)]
