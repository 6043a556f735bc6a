"""``/sdapi/v1/cluster``: what runs where. The engine describes its replicas; the queue adds the jobs it holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sdapi.serving.base import ServerState


def _shown_names(state: ServerState, files: list[str]) -> list[str]:
    """Loaded checkpoint files as the models folder names them (``sub/model.safetensors``; never a server path)."""
    names = {Path(info.filename): info.name for info in state.catalog.items()}
    return [names.get(Path(f), Path(f).name) for f in files]


def cluster(state: ServerState) -> dict[str, Any]:
    """The ``ClusterResponse`` body."""
    replicas = [dataclasses.asdict(r) for r in state.engine.replicas()]
    for replica in replicas:
        replica["loaded"] = _shown_names(state, replica["loaded"])
    running = state.queue.running
    if len(replicas) == 1 and replicas[0]["replica_id"] == "local" and running:
        replicas[0]["running"] = running[0].name  # the in-process engine runs the queue's one job
    return {
        "mode": "local" if state.queue.workers == 1 and all(r["replica_id"] == "local" for r in replicas) else "ray",
        "replicas": [{"id": r.pop("replica_id"), **r} for r in replicas],
        "running": len(running),
        "queued": state.queue.pending,
        "workers": state.queue.workers,
    }
