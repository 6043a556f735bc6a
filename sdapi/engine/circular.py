"""A1111's ``tiling``: every convolution of the UNet and VAE pads circularly, so the image tiles seamlessly.

A1111 switches ``padding_mode`` on the model's ``Conv2d`` layers for the job (``apply_circular``); we do the same and
always switch back, so the next job sees the model as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch


@contextlib.contextmanager
def circular_padding(modules: Iterable[torch.nn.Module], enabled: bool) -> Iterator[None]:
    """Pad every ``Conv2d`` in ``modules`` circularly inside the block (nothing happens when not ``enabled``)."""
    if not enabled:
        yield
        return
    convs = [m for module in modules for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    before = [conv.padding_mode for conv in convs]
    try:
        for conv in convs:
            conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in zip(convs, before):
            conv.padding_mode = mode
