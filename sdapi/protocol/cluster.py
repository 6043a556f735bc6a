"""``GET /sdapi/v1/cluster`` (an sdapi extension): the engine replicas behind the server and the jobs on them."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ClusterResponse", "ReplicaItem"]


class ReplicaItem(BaseModel):
    model_config = ConfigDict(title="ReplicaItem")

    id: str = Field(title="Replica", description="the replica's name (`local` for the in-process engine)")
    device: str = Field(title="Device", description="the device its jobs run on (cpu, cuda...)")
    loaded: list[str] = Field(title="Loaded checkpoints", description="checkpoint files it holds (as the models "
                              "folder names them), least recently used first")
    checkpoint_loads: int = Field(title="Checkpoint loads", description="times it read a checkpoint file")
    running: Optional[str] = Field(default=None, title="Running job", description="the job it runs now, if any")
    jobs_done: int = Field(default=0, title="Jobs done", description="jobs it finished since it started")


class ClusterResponse(BaseModel):
    model_config = ConfigDict(title="ClusterResponse")

    mode: str = Field(title="Mode", description="`local` (one process) or `ray` (Ray Serve replicas)")
    replicas: list[ReplicaItem] = Field(title="Replicas")
    running: int = Field(title="Running jobs", description="jobs the server's workers run now")
    queued: int = Field(title="Queued jobs", description="jobs waiting for a worker")
    workers: int = Field(title="Workers", description="how many jobs may run at once")
