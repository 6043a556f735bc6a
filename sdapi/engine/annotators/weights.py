"""Reading an annotator file: a pickled PyTorch state dict (``.pth``/``.pt``, loaded with ``weights_only``) or a
``.safetensors`` file, with DataParallel's ``module.`` prefixes removed."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from sdapi.engine.errors import UnsupportedRequest


class AnnotatorFileError(UnsupportedRequest):
    """An annotator file that is not the network its preprocessor needs (answered as a 422)."""


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an annotator file, on the CPU.

    Raises:
        AnnotatorFileError: unreadable, or not a mapping of tensors.
    """
    try:
        if Path(path).suffix == ".safetensors":
            raw = load_file(str(path))
        else:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same mistake for the caller
        raise AnnotatorFileError(f"{Path(path).name} is not a readable PyTorch file") from exc
    # Releases that wrap their weights: NormalBae ("model"), PiDiNet ("state_dict"), LeReS ("depth_model").
    for wrapper in ("model", "state_dict", "depth_model"):
        if isinstance(raw, dict) and isinstance(raw.get(wrapper), dict):
            raw = raw[wrapper]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise AnnotatorFileError(f"{Path(path).name} holds no state dict")
    return {key.replace("module.", "", 1) if key.startswith("module.") else key: value
            for key, value in raw.items()}


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str,
                ignored_prefixes: tuple[str, ...] = ()) -> torch.nn.Module:
    """``module`` with ``state`` loaded, every key accounted for (``ignored_prefixes``: keys the network never
    uses, such as a classifier head), in eval mode.

    Raises:
        AnnotatorFileError: missing or unexpected keys, or a shape that differs.
    """
    kept = {k: v for k, v in state.items() if not k.startswith(ignored_prefixes)}
    try:
        module.load_state_dict(kept, strict=True)
    except RuntimeError as exc:
        raise AnnotatorFileError(f"{name}: the file does not match the network ({str(exc).splitlines()[0]})") from exc
    return module.eval()


def count_indexed(state: dict[str, torch.Tensor], prefix: str) -> int:
    """How many ``prefix<i>.`` entries a state dict has (``i`` from 0, contiguous)."""
    count = 0
    while any(key.startswith(f"{prefix}{count}.") for key in state):
        count += 1
    return count
