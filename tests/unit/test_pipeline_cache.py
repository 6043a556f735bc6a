"""The pipeline LRU loads each file once, even under concurrent requests."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sdapi.engine.pipeline_cache import PipelineCache


def test_concurrent_gets_load_once():
    calls = []

    def load(path):
        calls.append(path)
        time.sleep(0.05)
        return object()

    cache = PipelineCache(load, extra=1)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(Path("a")))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [Path("a")] and len({id(r) for r in results}) == 1


def test_lru_keeps_current_plus_extra():
    cache = PipelineCache(lambda p: str(p), extra=1)
    for name in ("a", "b", "c"):
        cache.get(Path(name))
    assert cache.loaded() == [Path("b"), Path("c")]
    cache.get(Path("b"))
    assert cache.loaded() == [Path("c"), Path("b")]
    zero = PipelineCache(lambda p: str(p), extra=0)
    zero.get(Path("a"))
    zero.get(Path("b"))
    assert zero.loaded() == [Path("b")]
