"""``GET /sdapi/v1/cluster`` (sdapi extension): the engine's replicas, their checkpoints and jobs; answered at once."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol.cluster import ClusterResponse
from sdapi.routes.deps import State
from sdapi.serving import cluster as serving

router = APIRouter()


@router.get("/sdapi/v1/cluster", response_model=ClusterResponse)
def clusterapi(state: State):
    return serving.cluster(state)
