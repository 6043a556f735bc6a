"""The board: one small Ray actor shared by the ingress and the engine replicas (plain Python; ``ray.remote`` makes
it an actor in :func:`sdapi.cluster.engine.open_board`).

Replicas post their status on it (``/sdapi/v1/cluster`` reads it without queueing behind a running job), and it
carries the ingress's interrupt and skip requests to whichever replica runs the job (and a training job's cancel to
its task): Serve routes a call to any replica, so a flag the replica polls is the one channel that reaches the right
one.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from sdapi.engine.api import ReplicaStatus

# A replica that posted nothing for this long while it said it was running a job is shown as lost.
STALE_S = 600.0


class Board:
    """Replica statuses and job flags."""

    def __init__(self):
        self._replicas: dict[str, dict[str, Any]] = {}
        self._flags: dict[str, dict[str, Any]] = {}
        self._unload_epoch = 0

    # -- replicas --------------------------------------------------------------------------------------

    def post(self, status: ReplicaStatus, actor_name: str) -> int:
        """A replica's status now; returns the unload epoch (``/unload-checkpoint`` reaches replicas this way)."""
        self._replicas[status.replica_id] = {**asdict(status), "actor_name": actor_name, "posted": time.time()}
        return self._unload_epoch

    def forget(self, replica_id: str) -> None:
        """A replica is gone (its actor died or it shut down)."""
        self._replicas.pop(replica_id, None)

    def replicas(self) -> list[dict[str, Any]]:
        """Every replica's last status, with its actor name, oldest replica first."""
        return sorted(self._replicas.values(), key=lambda r: r["replica_id"])

    def unload_all(self) -> int:
        """Ask every replica to free its checkpoints before its next job; the new epoch."""
        self._unload_epoch += 1
        return self._unload_epoch

    # -- job flags -------------------------------------------------------------------------------------

    def open_job(self, job_id: str) -> None:
        self._flags[job_id] = {"interrupted": False, "skips": 0, "save_current": False}

    def interrupt(self, job_id: str) -> None:
        if job_id in self._flags:
            self._flags[job_id]["interrupted"] = True

    def skip(self, job_id: str) -> None:
        if job_id in self._flags:
            self._flags[job_id]["skips"] += 1

    def cancel(self, job_id: str, save_current: bool = False) -> None:
        """A training job's cancel: it stops at its next step, writing its current weights if ``save_current``."""
        if job_id in self._flags:
            self._flags[job_id].update(interrupted=True, save_current=bool(save_current))

    def flags(self, job_id: str) -> dict[str, Any]:
        """``{"interrupted": bool, "skips": int, "save_current": bool}`` (a job that was closed reads as
        interrupted)."""
        return dict(self._flags.get(job_id, {"interrupted": True, "skips": 0}))

    def close_job(self, job_id: str) -> None:
        self._flags.pop(job_id, None)


def open_board(name: str):
    """The named board actor of one sdapi application, created by whichever part asks first.

    Detached, so that it outlives the ingress replica that may have created it (a restarted ingress finds the
    replicas' statuses still there); ``serve shutdown`` leaves it, and ``ray stop`` ends it.
    """
    import ray  # Ray mode only

    actor = ray.remote(Board).options(name=name, namespace="sdapi", get_if_exists=True, lifetime="detached",
                                      num_cpus=0, max_restarts=-1)
    return actor.remote()
