"""Choosing, per targeted layer, between merging a LoRA into the weight and adding it with a forward hook.

A merged layer costs once per job: copy the weight, compute and add ``up @ down`` for each LoRA, copy the weight
back. A hooked layer costs at every call of the model: a Python hook plus two thin products over the rows the
layer sees. So merging wins for the many UNet calls of a sampling job on a big latent, hooks win for a layer that
sees few rows in all (a tiny job, the text encoder run once per prompt) but has a big weight, or many LoRAs::

    merge = Σ_loras (MERGE_LAYER_S + elements · (MERGE_ELEMENT_S + rank · MAC_S))
    hooks = Σ_loras Σ_passes calls · (HOOK_CALL_S + rows · rank · (inputs + outputs) · MAC_S)

``rows`` is what one image gives the layer per call: 2 (CFG) × latent pixels / 4^level for a UNet layer; the
text encoder is called twice (prompt and negative prompt) on 77 tokens. The constants were measured on a 2-core x86 CPU with torch's 2 threads
(``benchmarks/lora_overhead.py --calibrate`` prints them); on a GPU both the copies and the products are faster,
so the same constants lean further toward merging, which is the right way there too.

The choice depends only on what the job asks per image (steps, sizes, hires pass) and on the LoRA set, all part
of a merged batch's key (:mod:`sdapi.engine.batching`): every job of a batch makes the same choice it makes alone,
so its pixels do not depend on its batch partners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from sdapi.engine.lora_targets import TEXT_ENCODER
from sdapi.engine.params import Img2ImgParams, Txt2ImgParams

if TYPE_CHECKING:
    from sdapi.engine.lora import BoundLayer

MERGE, HOOKS, AUTO = "merge", "hooks", "auto"

# Measured: 27 µs per hook call on a lone layer, about 90 µs per hooked layer and call inside a tiny UNet job.
HOOK_CALL_S = 50e-6  # one hooked layer's Python hook and its small kernels, per model call
MERGE_LAYER_S = 50e-6  # one layer's copy, product, scaling, add and restore kernels (measured 52 µs)
MERGE_ELEMENT_S = 3e-9  # per weight element: copy out, update, add, copy back (measured 3.0 ns)
MAC_S = 2e-11  # one float32 multiply-accumulate in a product (measured 1.5e-11 merging, 2.5e-11 hooked)
ROWS_PER_CALL = 2  # the image's conditional and unconditional rows (CFG)
TEXT_CALLS, TEXT_TOKENS = 2, 77  # the prompt and the negative prompt, one 75-token chunk each
LATENT_FACTOR = 8  # pixels per latent pixel, per side


@dataclass(frozen=True)
class SamplingWork:
    """The UNet work one image of a job asks for.

    Args:
        passes: per sampling pass, ``(model calls, latent pixels)``.
    """

    passes: tuple[tuple[int, int], ...]


def sampling_work(params: Txt2ImgParams | Img2ImgParams) -> SamplingWork:
    """The per-image work of a job: its steps on its latent, and the hires pass when there is one."""
    def latent(width: int, height: int) -> int:
        return (width // LATENT_FACTOR) * (height // LATENT_FACTOR)

    passes = [(params.steps, latent(params.width, params.height))]
    hires = getattr(params, "hires", None)
    if hires is not None:
        passes.append((hires.steps, latent(hires.width, hires.height)))
    return SamplingWork(tuple(passes))


def _shape(module: torch.nn.Module) -> tuple[int, int]:
    """``(inputs, outputs)`` per row of a Linear or Conv2d (a conv's inputs span its kernel)."""
    if isinstance(module, torch.nn.Conv2d):
        kernel_h, kernel_w = module.kernel_size
        return module.in_channels * kernel_h * kernel_w, module.out_channels
    return module.in_features, module.out_features


def hook_seconds(layer: BoundLayer, work: SamplingWork) -> float:
    """Estimated cost of applying ``layer`` with a hook for one image of the job."""
    inputs, outputs = _shape(layer.module)
    per_row = layer.layer.rank * (inputs + outputs) * MAC_S
    if layer.component == TEXT_ENCODER:
        return TEXT_CALLS * (HOOK_CALL_S + TEXT_TOKENS * per_row)
    shrink = 4 ** layer.level
    return sum(calls * (HOOK_CALL_S + ROWS_PER_CALL * pixels / shrink * per_row) for calls, pixels in work.passes)


def merge_seconds(layer: BoundLayer) -> float:
    """Estimated cost of merging ``layer`` into its weight and restoring the weight."""
    elements = layer.module.weight.numel()
    return MERGE_LAYER_S + elements * (MERGE_ELEMENT_S + layer.layer.rank * MAC_S)


def split_by_mode(bound: list[BoundLayer], work: SamplingWork | None,
                  mode: str = AUTO) -> tuple[list[BoundLayer], list[BoundLayer]]:
    """``bound`` split into the layers to merge and the layers to hook, each in its original order.

    All layers of one module go the same way. Without ``work`` (a caller outside a sampling job) or with
    ``mode`` ``"merge"``, everything is merged; with ``"hooks"``, everything is hooked.
    """
    if mode == HOOKS:
        return [], list(bound)
    if mode == MERGE or work is None:
        return list(bound), []
    per_module: dict[int, list[BoundLayer]] = {}
    for layer in bound:
        per_module.setdefault(id(layer.module), []).append(layer)
    merged = set()
    for module_id, layers in per_module.items():
        if sum(merge_seconds(layer) for layer in layers) <= sum(hook_seconds(layer, work) for layer in layers):
            merged.add(module_id)
    return ([layer for layer in bound if id(layer.module) in merged],
            [layer for layer in bound if id(layer.module) not in merged])
