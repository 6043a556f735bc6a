"""What one epoch is made of: images × repeats sorted into buckets and cut into batches (kohya's arithmetic).

``steps per epoch = Σ over buckets ceil(images × repeats in the bucket / batch size)``; regularisation images are
repeated (cycling through them, as kohya does) until they match the training images' count, so they double an
epoch. Optimizer updates per epoch divide that by ``gradient_accumulation_steps`` (rounded up).
"""

from __future__ import annotations

import math

from sdapi.engine.training.buckets import BucketSpec, assign_bucket, bucket_resolutions
from sdapi.engine.training.plan import Entry, ImageItem, Schedule, Subset, bucket_counts

# kohya's ``max_train_steps`` default, used when a request sets neither limit.
DEFAULT_MAX_TRAIN_STEPS = 1600
# A job longer than this is a typo (10x the step limit a request may set), refused before it is queued.
MAX_TOTAL_STEPS = 100_000_000


def regularisation_repeats(reg_subsets: list[Subset], train_count: int) -> list[tuple[ImageItem, int]]:
    """kohya's balancing: register each reg image with its folder repeats, then add one repeat at a time in
    turn until the reg count reaches ``train_count``."""
    infos = [[item, subset.repeats] for subset in reg_subsets for item in subset.images]
    if not infos or train_count <= 0:
        return []
    count, first_pass, used = 0, True, 0
    while count < train_count:
        for info in infos:
            if first_pass:
                count += info[1]
                used += 1
            else:
                info[1] += 1
                count += 1
            if count >= train_count:
                break
        first_pass = False
    return [(item, repeats) for item, repeats in infos[:used] if repeats > 0]


def build_entries(subsets: list[Subset], reg_subsets: list[Subset], spec: BucketSpec) -> list[Entry]:
    """Every training (and balanced regularisation) image with its repeats and bucket."""
    resolutions = bucket_resolutions(spec) if spec.enabled and not spec.no_upscale else None

    def entry(item: ImageItem, repeats: int, is_reg: bool) -> Entry:
        return Entry(item, repeats, assign_bucket(item.width, item.height, spec, resolutions), is_reg)

    entries = [entry(item, s.repeats, False) for s in subsets for item in s.images]
    train_count = sum(e.repeats for e in entries)
    entries += [entry(item, repeats, True) for item, repeats in regularisation_repeats(reg_subsets, train_count)]
    return entries


def steps_per_epoch(entries: list[Entry], batch_size: int) -> int:
    """Batches per epoch: each bucket rounded up separately."""
    return sum(math.ceil(count / batch_size) for count in bucket_counts(entries).values())


def schedule(entries: list[Entry], batch_size: int, accumulation: int, max_epochs: int | None,
             max_steps: int | None) -> Schedule:
    """Epochs and optimizer steps by kohya's rule: ``max_train_epochs`` wins when both limits are given, steps
    alone run that many steps, neither runs kohya's default of :data:`DEFAULT_MAX_TRAIN_STEPS`."""
    per_epoch = steps_per_epoch(entries, batch_size)
    updates = math.ceil(per_epoch / accumulation)
    if max_epochs:
        return Schedule(per_epoch, updates, max_epochs, max_epochs * updates)
    total = max_steps or DEFAULT_MAX_TRAIN_STEPS
    return Schedule(per_epoch, updates, math.ceil(total / updates), total)


