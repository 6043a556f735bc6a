"""Things loaded from files (networks), kept by key with the least recently used dropped first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


def file_marker(path: Path) -> tuple[str, int]:
    """A file's part of a cache key: its path and modification time (a rewritten file is read again)."""
    path = Path(path)
    return str(path), path.stat().st_mtime_ns


class LoadedLru(Generic[T]):
    """An LRU of loaded things; ``loads`` counts the loads (tests read it to prove reuse).

    Loading happens outside the lock, so a slow load does not block lookups of other keys.
    """

    def __init__(self, size: int):
        self.size = size
        self.loads = 0
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def fetch(self, key: Hashable, load: Callable[[], T]) -> T:
        """The item for ``key``, loaded by ``load`` the first time."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        item = load()
        with self._lock:
            self.loads += 1
            self._items[key] = item
            while len(self._items) > max(1, self.size):
                self._items.popitem(last=False)
        return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
