"""Model and sampler listings: ``/sd-models``, ``/refresh-checkpoints``, ``/samplers``, ``/schedulers``, ``/sd-vae``,
``/refresh-vae`` and ``/refresh-embeddings`` (the last four from later A1111 versions)."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import SamplerItem, SchedulerItem, SDModelItem, SDVaeItem
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


@router.get("/sdapi/v1/sd-vae", response_model=list[SDVaeItem])
def get_sd_vaes(state: State):
    return catalog.sd_vaes(state)


@router.post("/sdapi/v1/refresh-vae")
def refresh_vae(state: State):
    catalog.refresh_vaes(state)
    return None


@router.post("/sdapi/v1/refresh-embeddings")
def refresh_embeddings(state: State):
    catalog.refresh_embeddings(state)
    return None
