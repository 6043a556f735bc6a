"""Merging LoRA layers into a model's weights for one job, and putting the exact weights back afterwards.

Each touched weight is copied before the first update and copied back when the job ends, however it ends
(success, exception, interrupt, out of memory half-way through the merge): the weights are restored from the
copy, never by subtracting the update, so they come back bit for bit.

The update follows A1111 v1.2.1's built-in Lora extension, so merged jobs round like A1111's: ``up`` and
``down`` in the weight's dtype, their product (a matrix product, or for a 3x3 LoCon ``down`` a 1x1 convolution
of ``down``'s kernels by ``up``), times the multiplier, then times ``alpha / rank``, added to the weight in place,
one LoRA after another in the prompt's order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from sdapi.engine.lora_file import LoraLayer

if TYPE_CHECKING:
    from sdapi.engine.lora import BoundLayer


def weight_update(layer: LoraLayer, multiplier: float, weight: torch.Tensor) -> torch.Tensor:
    """The change one LoRA layer makes to ``weight`` at ``multiplier``, shaped like ``weight``.

    Args:
        layer: the LoRA layer (``down``/``up``/``alpha``).
        multiplier: the prompt's multiplier for the layer's component.
        weight: the targeted module's weight (its dtype and device are used).
    """
    up = layer.up.to(device=weight.device, dtype=weight.dtype)
    down = layer.down.to(device=weight.device, dtype=weight.dtype)
    if down.dim() == 4 and tuple(down.shape[2:]) != (1, 1):
        # Contract the rank axis per kernel position: down's input channels act as a batch, up as 1x1 kernels.
        up_kernel = up if up.dim() == 4 else up[:, :, None, None]
        product = F.conv2d(down.permute(1, 0, 2, 3), up_kernel).permute(1, 0, 2, 3)
    else:
        product = up.flatten(1) @ down.flatten(1)
    # Two scalar products in this order, as A1111 rounds them.
    return (product * multiplier * layer.scale).reshape(weight.shape)


@contextlib.contextmanager
def merged(bound: list[BoundLayer]) -> Iterator[None]:
    """Add every bound layer to its module's weight for the block; the weights are restored exactly afterwards.

    Args:
        bound: layers in the order they are applied (modules may repeat: several LoRAs on one layer).

    Raises:
        MemoryError, torch.OutOfMemoryError: no room for a copy or an update; the weights merged so far are
            restored before it propagates.
    """
    backups: dict[int, tuple[torch.nn.Parameter, torch.Tensor]] = {}  # by id: tensors compare elementwise
    try:
        with torch.no_grad():
            for layer in bound:
                weight = layer.module.weight
                if id(weight) not in backups:
                    backups[id(weight)] = (weight, weight.detach().clone())
                weight.add_(weight_update(layer.layer, layer.multiplier, weight))
        yield
    finally:
        with torch.no_grad():
            for weight, backup in backups.values():
                weight.copy_(backup)
