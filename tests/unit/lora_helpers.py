"""Helpers that write small LoRA files for the LoRA tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_lora_file(path: Path, metadata: dict[str, str] | None = None,
                    tensors: tuple[str, ...] = ("lora_unet_a.lora_down.weight", "lora_unet_a.lora_up.weight"),
                    payload: bytes = b"\0" * 8) -> Path:
    """A safetensors file written by hand (no torch): one F32 tensor per name, each holding ``payload``.

    Args:
        path: destination (parent folders are created).
        metadata: the ``__metadata__`` strings; ``None`` leaves the key out.
        tensors: tensor names.
        payload: bytes of each tensor (a multiple of 4).

    Returns:
        ``path``.
    """
    header: dict = {"__metadata__": metadata} if metadata is not None else {}
    for i, name in enumerate(tensors):
        header[name] = {"dtype": "F32", "shape": [len(payload) // 4],
                        "data_offsets": [i * len(payload), (i + 1) * len(payload)]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + payload * len(tensors))
    return path


def lora_tensors(layers: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], alpha: float | None = 2.0,
                 seed: int = 0, up_std: float = 0.5) -> dict:
    """Random kohya tensors: ``{kohya name: (down shape, up shape)}`` → ``.lora_down/.lora_up/.alpha`` tensors."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, (down_shape, up_shape) in layers.items():
        tensors[f"{name}.lora_down.weight"] = torch.randn(down_shape, generator=generator) * 0.3
        tensors[f"{name}.lora_up.weight"] = torch.randn(up_shape, generator=generator) * up_std
        if alpha is not None:
            tensors[f"{name}.alpha"] = torch.tensor(alpha)
    return tensors


def write_torch_lora(path: Path, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Save tensors as a safetensors LoRA file (parent folders are created)."""
    from sdapi.engine.ldm_layout import write_safetensors

    return write_safetensors(tensors, path, metadata or {})
