"""Loaded annotator networks, least recently used dropped first (the extension keeps each preprocessor's model
loaded until it is unloaded; here a small LRU bounds the memory)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from sdapi.engine.annotators.registry import NETWORKS, RunResult
from sdapi.engine.annotators.weights import AnnotatorFileError

DEFAULT_SIZE = 2


class AnnotatorCache:
    """Networks by (name, files and their modification times), on one device."""

    def __init__(self, device: torch.device, size: int = DEFAULT_SIZE):
        self.device = device
        self.size = size
        self.loads = 0  # files read, for tests
        self._nets: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, network: str, files: dict[str, Path]) -> object:
        key = (network,) + tuple(sorted((role, str(path), Path(path).stat().st_mtime_ns)
                                        for role, path in files.items()))
        with self._lock:
            if key in self._nets:
                self._nets.move_to_end(key)
                return self._nets[key]
        try:
            built = NETWORKS[network].build({role: Path(p) for role, p in files.items()}, self.device)
        except AnnotatorFileError:
            raise
        except (KeyError, IndexError, ValueError, RuntimeError) as exc:  # tensors missing or shaped otherwise
            names = ", ".join(Path(p).name for p in files.values())
            raise AnnotatorFileError(f"{names}: not the {network} annotator network's file") from exc
        with self._lock:
            self.loads += 1
            self._nets[key] = built
            while len(self._nets) > max(1, self.size):
                self._nets.popitem(last=False)
        return built

    def run(self, network: str, files: dict[str, Path], image: np.ndarray, options: dict) -> RunResult:
        """``network`` (built from ``files`` once) run on ``image``."""
        return NETWORKS[network].run(self._get(network, files), image, self.device, options)

    def clear(self) -> None:
        with self._lock:
            self._nets.clear()
