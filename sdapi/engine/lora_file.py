"""Reading a kohya LoRA/LoCon file into per-layer ``down``/``up``/``alpha`` tensors.

Files are refused as a whole when they are not kohya LoRA/LoCon (:mod:`.lora_format`); tensors are moved to the
runtime's device and dtype once, here, so that activating a cached file later copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdapi.files import read_safetensors_header
from sdapi.engine.lora_family import family_of_file
from sdapi.engine.lora_format import (
    ALPHA,
    DOWN,
    UP,
    UnsupportedLora,
    check_supported,
    split_key,
)


@dataclass
class LoraLayer:
    """One layer's low-rank update, ``up @ down`` scaled by ``alpha / rank``.

    Args:
        down: ``[rank, in]`` (Linear) or ``[rank, in, kh, kw]`` (Conv2d; 3x3 for LoCon).
        up: ``[out, rank]`` or ``[out, rank, 1, 1]``.
        alpha: kohya's ``network_alpha``; ``None`` (or 0) means a scale of 1.
    """

    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None

    @property
    def rank(self) -> int:
        """The LoRA rank (``up``'s second dimension, as A1111 counts it)."""
        return self.up.shape[1]

    @property
    def scale(self) -> float:
        """``alpha / rank`` as A1111 and kohya apply it; 1.0 without an alpha."""
        return self.alpha / self.rank if self.alpha else 1.0


@dataclass
class LoraNetwork:
    """A loaded LoRA file.

    Args:
        path: the file.
        layers: ``{kohya layer name: layer}``.
        nbytes: memory held by the tensors (for the cache's budget).
        family: the model family it was made for (:mod:`.lora_family`), ``None`` when the file does not say.
    """

    path: Path
    layers: dict[str, LoraLayer] = field(default_factory=dict)
    nbytes: int = 0
    family: str | None = None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a pickled ``.pt``/``.ckpt`` (loaded ``weights_only``)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise UnsupportedLora(f"{path} does not hold a dict of tensors")
    return {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


def layers_from_state_dict(state_dict: dict[str, torch.Tensor], device: torch.device,
                           dtype: torch.dtype, source: str) -> dict[str, LoraLayer]:
    """Group kohya tensors by layer; layers missing ``down`` or ``up`` are dropped.

    Raises:
        UnsupportedLora: when the tensors are not a kohya LoRA/LoCon.
    """
    check_supported(state_dict, source)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        layer, suffix = split_key(key)
        parts.setdefault(layer, {})[suffix] = tensor
    layers = {}
    for name, found in parts.items():
        if DOWN not in found or UP not in found:
            continue
        alpha = found.get(ALPHA)
        layers[name] = LoraLayer(
            down=found[DOWN].to(device=device, dtype=dtype),
            up=found[UP].to(device=device, dtype=dtype),
            alpha=float(alpha.float().item()) if alpha is not None else None,
        )
    return layers


def load_lora_network(path: Path, device: torch.device, dtype: torch.dtype) -> LoraNetwork:
    """Read a LoRA file onto ``device`` in ``dtype``.

    Raises:
        UnsupportedLora: LoHa, LoKr and other non-kohya files.
        OSError, ValueError: unreadable files.
    """
    path = Path(path)
    layers = layers_from_state_dict(read_state_dict(path), device, dtype, str(path))
    nbytes = sum(t.numel() * t.element_size() for layer in layers.values() for t in (layer.down, layer.up))
    return LoraNetwork(path=path, layers=layers, nbytes=nbytes, family=family_of_file(layers, file_metadata(path)))


def file_metadata(path: Path) -> dict[str, str]:
    """A ``.safetensors`` file's ``__metadata__`` (``{}`` for pickles, which have none)."""
    if path.suffix.lower() != ".safetensors":
        return {}
    metadata = read_safetensors_header(path).get("__metadata__")
    return metadata if isinstance(metadata, dict) else {}
