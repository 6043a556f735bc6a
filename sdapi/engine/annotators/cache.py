"""Loaded annotator networks, least recently used dropped first (the extension keeps each preprocessor's model
loaded until it is unloaded; here a small LRU bounds the memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sdapi.engine.annotators.registry import NETWORKS, RunResult
from sdapi.engine.annotators.weights import AnnotatorFileError
from sdapi.engine.loaded_lru import LoadedLru, file_marker

DEFAULT_SIZE = 2


class AnnotatorCache(LoadedLru):
    """Networks by (name, files and their modification times), on one device."""

    def __init__(self, device: torch.device, size: int = DEFAULT_SIZE):
        super().__init__(size)
        self.device = device

    def built(self, network: str, files: dict[str, Path]) -> object:
        """``network`` built from ``files`` (once, then kept)."""
        key = (network,) + tuple(sorted((role, *file_marker(path)) for role, path in files.items()))
        return self.fetch(key, lambda: self._build(network, files))

    def _build(self, network: str, files: dict[str, Path]) -> object:
        try:
            return NETWORKS[network].build({role: Path(p) for role, p in files.items()}, self.device)
        except AnnotatorFileError:
            raise
        except (KeyError, IndexError, ValueError, RuntimeError) as exc:  # tensors missing or shaped otherwise
            names = ", ".join(Path(p).name for p in files.values())
            raise AnnotatorFileError(f"{names}: not the {network} annotator network's file") from exc

    def run(self, network: str, files: dict[str, Path], image: np.ndarray, options: dict) -> RunResult:
        """``network`` (built from ``files`` once) run on ``image``."""
        return NETWORKS[network].run(self.built(network, files), image, self.device, options)
