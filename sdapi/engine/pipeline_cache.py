"""A small LRU of loaded pipelines (A1111's ``sd_checkpoint_cache``), never loading one file twice at once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class PipelineCache(Generic[T]):
    """Keeps the current pipeline plus ``extra`` recently used ones.

    Args:
        load: builds the object for a checkpoint path (slow; called outside the cache lock).
        extra: how many pipelines to keep besides the one in use.
    """

    def __init__(self, load: Callable[[Path], T], extra: int = 0):
        self._load = load
        self.extra = extra
        self._items: OrderedDict[Path, T] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Path, threading.Lock] = {}

    def get(self, path: Path) -> T:
        """The loaded object for ``path``, loading it once even under concurrent calls."""
        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                return self._items[path]
            file_lock = self._loading.setdefault(path, threading.Lock())
        with file_lock:
            with self._lock:
                if path in self._items:
                    self._items.move_to_end(path)
                    return self._items[path]
            self._evict(keep=self.extra)
            value = self._load(path)
            with self._lock:
                self._items[path] = value
                self._loading.pop(path, None)
            return value

    def _evict(self, keep: int) -> None:
        with self._lock:
            while len(self._items) > keep:
                self._items.popitem(last=False)

    def loaded(self) -> list[Path]:
        """Paths currently in memory, least recently used first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Drop every pipeline (``/unload-checkpoint``)."""
        with self._lock:
            self._items.clear()
