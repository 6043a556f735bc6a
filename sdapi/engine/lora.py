"""Applying LoRA files to a loaded pipeline for one job; the pipeline is exactly as before once the job ends.

Each targeted ``Linear``/``Conv2d`` is changed one of two ways, chosen per layer by a small cost model
(:mod:`.lora_cost`):

* **merged** (:mod:`.lora_merge`): ``multiplier * alpha/rank * up @ down`` is added to the weight for the job,
  as A1111's built-in Lora extension does, and the weight is copied back from a backup afterwards. Sampling
  then runs at the speed of the bare model; the merge costs a few weight-sized passes per job.
* **hooked**: a forward hook adds ``multiplier * alpha/rank * up(down(x))`` to the layer's output (A1111's
  ``lora_functional`` way, kohya's forward). Cheaper where a big weight sees few rows in all: one-step jobs,
  the deepest UNet levels of a tiny image, a large text encoder.

Either way a job without LoRA after one with LoRA gives exactly a fresh server's image: hooks are removed and
merged weights restored bit for bit, also when the job fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sdapi.engine.lora_cache import LoraCache
from sdapi.engine.lora_cost import AUTO, SamplingWork, split_by_mode
from sdapi.engine.lora_file import LoraLayer, LoraNetwork
from sdapi.engine.lora_family import mismatch
from sdapi.engine.lora_format import UnsupportedLora
from sdapi.engine.lora_merge import merged
from sdapi.engine.lora_targets import TEXT_ENCODER, LoraTarget, model_family, target_table
from sdapi.engine.params import LoraActivation
from sdapi.engine.batch_invariance import invariant_product

log = logging.getLogger("sdapi")

Delta = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BoundLayer:
    """A LoRA layer attached to the module it modifies.

    Args:
        module: the targeted ``Linear`` or ``Conv2d``.
        layer: the LoRA layer.
        multiplier: the prompt's multiplier for the module's component.
        component: ``"te"`` or ``"unet"``.
        level: the UNet resolution level the module runs at (:class:`.lora_targets.LoraTarget`).
    """

    module: torch.nn.Module
    layer: LoraLayer
    multiplier: float
    component: str
    level: int = 0

    @property
    def scale(self) -> float:
        """``multiplier * alpha / rank``."""
        return self.multiplier * self.layer.scale

    @property
    def delta(self) -> Delta:
        """``x -> up(down(x))`` for the module's input."""
        if isinstance(self.module, torch.nn.Linear):
            return linear_delta(self.layer)
        return conv_delta(self.layer, self.module)


def linear_delta(layer: LoraLayer) -> Delta:
    """``up(down(x))`` for a Linear target (1x1 conv-shaped weights are flattened)."""
    down, up = layer.down.flatten(1), layer.up.flatten(1)
    # Computed as the layer itself computes its rows, so a merged batch gives each job its own result.
    return lambda x: invariant_product(lambda rows: F.linear(F.linear(rows, down), up), x, down.shape[1])


def conv_delta(layer: LoraLayer, module: torch.nn.Conv2d) -> Delta:
    """``up(down(x))`` for a Conv2d target: ``down`` uses the module's stride, padding and padding mode."""
    down = layer.down if layer.down.dim() == 4 else layer.down[:, :, None, None]
    up = layer.up if layer.up.dim() == 4 else layer.up[:, :, None, None]
    return lambda x: F.conv2d(module._conv_forward(x, down, None), up)


def fits(layer: LoraLayer, module: torch.nn.Module) -> bool:
    """Whether the layer's shapes match the module (a LoRA for another architecture does not)."""
    down, up = layer.down, layer.up
    if up.dim() == 4 and tuple(up.shape[2:]) != (1, 1):
        return False
    if isinstance(module, torch.nn.Linear):
        return (down.dim() == 2 or tuple(down.shape[2:]) == (1, 1)) and down.shape[1] == module.in_features \
            and up.shape[0] == module.out_features and up.shape[1] == down.shape[0]
    kernel = tuple(down.shape[2:]) if down.dim() == 4 else (1, 1)
    return module.groups == 1 and kernel == tuple(module.kernel_size) and down.shape[1] == module.in_channels \
        and up.shape[0] == module.out_channels and up.shape[1] == down.shape[0]


def bind(network: LoraNetwork, activation: LoraActivation, targets: dict[str, LoraTarget]) -> list[BoundLayer]:
    """Attach a network's layers to their modules at the activation's multipliers.

    Layers that match no module, or whose shapes do not fit it, are skipped with one log line each kind;
    layers at multiplier 0 are left out, so weight 0 is exactly no LoRA.
    """
    bound, unmatched, misfit = [], [], []
    for name, layer in network.layers.items():
        target = targets.get(name)
        if target is None:
            unmatched.append(name)
            continue
        multiplier = activation.te_multiplier if target.component == TEXT_ENCODER else activation.unet_multiplier
        if multiplier == 0:
            continue
        if not fits(layer, target.module):
            misfit.append(name)
            continue
        bound.append(BoundLayer(target.module, layer, multiplier, target.component, target.level))
    if unmatched:
        log.warning("Lora %s: %d layers match nothing in this model and are skipped (e.g. %s)",
                    activation.name, len(unmatched), ", ".join(sorted(unmatched)[:3]))
    if misfit:
        log.warning("Lora %s: %d layers do not fit this model's shapes and are skipped (e.g. %s)",
                    activation.name, len(misfit), ", ".join(sorted(misfit)[:3]))
    return bound


class _AddLoraOutputs:
    """Forward hook adding every bound layer's contribution to one module's output."""

    def __init__(self, layers: list[BoundLayer]):
        self.deltas = [(layer.delta, layer.scale) for layer in layers]

    def __call__(self, module, args, kwargs, output):
        x = args[0] if args else next(iter(kwargs.values()))
        for delta, scale in self.deltas:
            # In place, scale fused into the add: the module's output is fresh and seen by nobody yet.
            output = output.add_(delta(x), alpha=scale)
        return output


@contextlib.contextmanager
def hooked(bound: list[BoundLayer]) -> Iterator[None]:
    """Install one hook per modified module for the duration of the block; always removed afterwards."""
    per_module: dict[torch.nn.Module, list[BoundLayer]] = {}
    for layer in bound:
        per_module.setdefault(layer.module, []).append(layer)
    handles = []
    try:
        for module, layers in per_module.items():
            handles.append(module.register_forward_hook(_AddLoraOutputs(layers), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


class LoraApplier:
    """Loads LoRA files through a cache and applies them to pipelines, one job at a time.

    Args:
        cache: the loaded-file cache.
        mode: ``"auto"`` (the cost model picks per layer), ``"merge"`` or ``"hooks"`` (benchmarks compare them).
    """

    def __init__(self, cache: LoraCache, mode: str = AUTO):
        self.cache = cache
        self.mode = mode
        self._tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def targets(self, pipe) -> dict[str, LoraTarget]:
        """The pipeline's kohya name table, built once per loaded UNet."""
        table = self._tables.get(pipe.unet)
        if table is None:
            table = self._tables[pipe.unet] = target_table(pipe)
        return table

    def load(self, activation: LoraActivation, warn: Callable[[str], None] | None = None) -> LoraNetwork | None:
        """The cached network for an activation; a file that cannot be applied is skipped with a warning.

        Raises:
            MemoryError, torch.OutOfMemoryError: the file does not fit; the job fails rather than running without it.
        """
        try:
            return self.cache.get(activation.path)
        except UnsupportedLora as exc:
            message = f"Lora {activation.name}: {exc}"
        except (MemoryError, torch.OutOfMemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a broken file skips that LoRA (A1111 goes on too)
            message = f"Lora {activation.name}: could not load the file ({type(exc).__name__}: {exc})"
        log.error("%s", message)
        if warn is not None:
            warn(message + "; it was not applied")
        return None

    def bound_layers(self, pipe, activations: list[LoraActivation],
                     warn: Callable[[str], None] | None = None) -> list[BoundLayer]:
        """Every layer of every activation, bound to ``pipe`` (files loaded or taken from the cache).

        A file made for another model family (an SD 1.5 LoRA on SDXL, or the reverse) is skipped whole with a
        warning, as is one of which no layer fits this model.
        """
        targets = self.targets(pipe) if activations else {}
        bound = []
        for activation in activations:
            network = self.load(activation, warn)
            if network is None:
                continue
            reason = mismatch(network.family, model_family(pipe))
            if reason is None:
                layers = bind(network, activation, targets)
                if not layers and (activation.te_multiplier or activation.unet_multiplier):
                    reason = "none of its layers fits the current model"
                bound += layers
            if reason is not None:
                message = f"Lora {activation.name}: {reason}; it was not applied"
                log.warning("%s", message)
                if warn is not None:
                    warn(message)
        return bound

    @contextlib.contextmanager
    def applied(self, pipe, activations: list[LoraActivation], warn: Callable[[str], None] | None = None,
                work: SamplingWork | None = None, mode: str | None = None) -> Iterator[list[BoundLayer]]:
        """Apply ``activations`` to ``pipe`` inside the block; the pipeline is exactly as before afterwards.

        Args:
            warn: told about each LoRA that could not be applied.
            work: what the job asks per image, for the merge-or-hook choice; ``None`` merges every layer.
            mode: ``"auto"`` (the cost model), or ``"merge"``/``"hooks"`` for every layer; default: the applier's.

        Raises:
            MemoryError, torch.OutOfMemoryError: no room to merge; nothing stays changed.
        """
        bound = self.bound_layers(pipe, activations, warn)
        to_merge, to_hook = split_by_mode(bound, work, mode or self.mode)
        with merged(to_merge), hooked(to_hook):
            yield bound

    def clear(self) -> None:
        """Forget every loaded file and name table (``unload_all``)."""
        self.cache.clear()
        self._tables = weakref.WeakKeyDictionary()
