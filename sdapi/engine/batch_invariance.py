"""Keeping an image's pixels independent of the batch it is sampled in, so requests can share a batch.

Cross-request batching promises each request the images it gets alone, bit for bit on CPU. The sampler's own
arithmetic is per image, and convolutions, attention and normalisations gave the same rows for any batch of two
rows or more (measured on CPU, oneDNN). Matrix products do not: the CPU kernel depends on the number of rows.
Below 16 rows it takes a small-matrix path, and with several threads and a long reduction (1024 inputs or more)
it splits the reduction between threads for up to about ``inputs / 10`` rows; either rounds differently. So every
``Linear`` of the UNet becomes an :class:`InvariantLinear`:

* inside a merged batch (:func:`row_groups` names each job's rows), a product with fewer rows per job than
  :func:`split_free_rows` is computed job by job, on exactly the rows the job has alone;
* everything else is one product, where the row count no longer matters.

Fast mode makes no such promise (:func:`invariance_off`): its products are plain, so a compiled UNet has no
data-dependent branch to break its graph on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch


@dataclass(frozen=True)
class RowGroups:
    """Each job's rows of a merged UNet batch, in the order the job's own batch has them.

    Args:
        rows: per job, its row indices.
        total: rows in the merged batch.
    """

    rows: tuple[tuple[int, ...], ...]
    total: int

    def indices(self, device: torch.device) -> list[torch.Tensor]:
        return [torch.tensor(rows, dtype=torch.long, device=device) for rows in self.rows]


# The worker samples one batch at a time on one thread; training uses its own model, which is never changed here.
_active: RowGroups | None = None
_off = False


@contextlib.contextmanager
def row_groups(groups: RowGroups | None) -> Iterator[None]:
    """Mark the UNet calls inside the block as a merged batch with these job rows (``None``: a single job)."""
    global _active
    previous, _active = _active, groups
    try:
        yield
    finally:
        _active = previous


@contextlib.contextmanager
def invariance_off() -> Iterator[None]:
    """Plain products inside the block (fast mode: batch invariance is not promised there)."""
    global _off
    previous, _off = _off, True
    try:
        yield
    finally:
        _off = previous


def split_free_rows(inputs: int) -> int:
    """Rows from which a CPU matrix product gives each row the same result whatever the row count (measured with
    1, 2 and 4 threads, with a margin)."""
    return 16 if inputs < 1024 else inputs // 2


def invariant_product(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, inputs: int) -> torch.Tensor:
    """``f(x)`` for a row-wise product ``f`` over ``inputs`` features, computed so that each row's result does not
    depend on the batch (a fresh tensor either way, so callers may add to it in place)."""
    if _off:
        return f(x)
    groups = _active
    if groups is None or x.shape[0] != groups.total:
        return f(x)
    tokens = x[0].numel() // inputs
    if min(len(rows) for rows in groups.rows) * tokens >= split_free_rows(inputs):
        return f(x)
    out: torch.Tensor | None = None
    for index in groups.indices(x.device):
        part = f(x.index_select(0, index))
        if out is None:
            out = part.new_empty((x.shape[0], *part.shape[1:]))
        out.index_copy_(0, index, part)
    return out


class InvariantLinear(torch.nn.Linear):
    """A ``Linear`` whose rows do not depend on the batch (:func:`invariant_product`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return invariant_product(super().forward, x, self.in_features)


def make_batch_invariant(unet: torch.nn.Module) -> int:
    """Turn the UNet's ``Linear`` layers into :class:`InvariantLinear` (same weights, same hooks).

    Returns:
        How many layers changed.
    """
    layers = [module for module in unet.modules() if type(module) is torch.nn.Linear]
    for layer in layers:
        layer.__class__ = InvariantLinear
    return len(layers)
