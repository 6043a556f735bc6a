"""Model and sampler listings: ``/sd-models``, ``/refresh-checkpoints``, ``/samplers``."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.engine.samplers import sampler_items
from sdapi.protocol import SamplerItem, SDModelItem
from sdapi.routes.deps import State

router = APIRouter()


@router.get("/sdapi/v1/samplers", response_model=list[SamplerItem])
def get_samplers():
    return sampler_items()


@router.get("/sdapi/v1/sd-models", response_model=list[SDModelItem])
def get_sd_models(state: State):
    return [info.as_item() for info in state.catalog.items()]


@router.post("/sdapi/v1/refresh-checkpoints")
def refresh_checkpoints(state: State):
    state.catalog.refresh()
    return None
