"""LoRAs in fast mode: merged into the UNet's weights for the job instead of hooked onto its modules.

A compiled graph does not see forward hooks added after it was traced (Dynamo does not guard on them), and hooks
present while it is traced would stay in it for later jobs. Merging changes only the values of parameters the
graphs take as inputs, so a job with another LoRA, or none, reuses the compiled code. The touched weights are
copied first and copied back afterwards, so the default mode's weights come back bit for bit. The text encoder
is not compiled and keeps the hooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from sdapi.engine.lora import BoundLayer, LoraApplier, hooked
from sdapi.engine.params import LoraActivation


def weight_delta(bound: BoundLayer) -> torch.Tensor:
    """``scale * up @ down`` in the shape of the module's weight (a Conv2d's kernel for LoCon layers)."""
    up, down = bound.layer.up.flatten(1), bound.layer.down
    weight = bound.module.weight
    if isinstance(bound.module, torch.nn.Linear):
        delta = up @ down.flatten(1)
    else:
        kernel = down if down.dim() == 4 else down[:, :, None, None]
        delta = torch.einsum("or,rihw->oihw", up, kernel)
    return (delta * bound.scale).reshape(weight.shape).to(weight)


@contextlib.contextmanager
def merged(bound: list[BoundLayer]) -> Iterator[None]:
    """Add every layer's update to its module's weight inside the block; the saved weights come back after."""
    saved: dict[torch.nn.Module, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for layer in bound:
                if layer.module not in saved:
                    saved[layer.module] = layer.module.weight.detach().clone()
                layer.module.weight.add_(weight_delta(layer))
        yield
    finally:
        with torch.no_grad():
            for module, weight in saved.items():
                module.weight.copy_(weight)


@contextlib.contextmanager
def fast_loras(applier: LoraApplier, pipe, activations: list[LoraActivation],
               warn: Callable[[str], None] | None = None) -> Iterator[list[BoundLayer]]:
    """``activations`` applied for a fast job: merged into the UNet, hooked onto the text encoder."""
    bound = applier.bound_layers(pipe, activations, warn)
    unet_modules = set(pipe.unet.modules()) if bound else set()
    in_unet = [layer for layer in bound if layer.module in unet_modules]
    elsewhere = [layer for layer in bound if layer.module not in unet_modules]
    with merged(in_unet), hooked(elsewhere):
        yield bound
