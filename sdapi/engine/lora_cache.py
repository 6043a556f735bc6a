"""Loaded LoRA files kept in memory: least recently used first out, bounded by total size and count.

A file is read from disk once per version (path, mtime, size): an edited file is read again, as A1111 does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from sdapi.engine.lora_file import LoraNetwork

DEFAULT_MAX_BYTES = 2 * 1024 ** 3
DEFAULT_MAX_ITEMS = 32


class LoraCache:
    """An LRU of ``LoraNetwork`` objects.

    Args:
        load: reads one file (``path -> LoraNetwork``), called outside the lock.
        max_bytes: evict until the kept networks hold at most this many bytes (the newest is always kept).
        max_items: and at most this many files.
    """

    def __init__(self, load: Callable[[Path], LoraNetwork], max_bytes: int = DEFAULT_MAX_BYTES,
                 max_items: int = DEFAULT_MAX_ITEMS):
        self._load = load
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, int, int], LoraNetwork] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # files read from disk so far (for tests and benchmarks)

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int]:
        stat = path.stat()
        return str(path.resolve()), stat.st_mtime_ns, stat.st_size

    def get(self, path: Path) -> LoraNetwork:
        """The network for ``path``, read from disk only if this version of the file is not cached.

        Raises:
            OSError: the file is gone; whatever ``load`` raises.
        """
        key = self._key(Path(path))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        network = self._load(Path(path))
        with self._lock:
            self.loads += 1
            self._drop_other_versions(key)
            self._items[key] = network
            self._evict()
        return network

    def _drop_other_versions(self, key: tuple[str, int, int]) -> None:
        for old in [k for k in self._items if k[0] == key[0]]:
            del self._items[old]

    def _evict(self) -> None:
        while len(self._items) > 1 and (len(self._items) > self.max_items or self.nbytes > self.max_bytes):
            self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached networks."""
        return sum(n.nbytes for n in self._items.values())

    def cached(self) -> list[str]:
        """Paths in memory, least recently used first."""
        with self._lock:
            return [k[0] for k in self._items]

    def clear(self) -> None:
        """Forget every cached network."""
        with self._lock:
            self._items.clear()
