"""Model and sampler listings: ``/sd-models``, ``/refresh-checkpoints``, ``/samplers``, ``/schedulers``."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import SamplerItem, SchedulerItem, SDModelItem
from sdapi.routes.deps import State
from sdapi.serving import catalog

router = APIRouter()


@router.get("/sdapi/v1/samplers", response_model=list[SamplerItem])
def get_samplers():
    return catalog.samplers()


@router.get("/sdapi/v1/schedulers", response_model=list[SchedulerItem])
def get_schedulers():
    return catalog.schedulers()


@router.get("/sdapi/v1/sd-models", response_model=list[SDModelItem])
def get_sd_models(state: State):
    return catalog.sd_models(state)


@router.post("/sdapi/v1/refresh-checkpoints")
def refresh_checkpoints(state: State):
    catalog.refresh_checkpoints(state)
    return None
