"""``GET /sdapi/v1/loras`` and ``POST /sdapi/v1/refresh-loras`` (A1111's built-in Lora extension).

A1111 registers these on the app without a response model, so its OpenAPI document shows an empty schema; the
routes here do the same (the items are still built through :class:`sdapi.protocol.loras.LoraItem`).
``refresh-loras`` arrived in v1.3.0; it rescans the folder and returns ``null``.
"""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol.loras import LoraItem
from sdapi.routes.deps import State
from sdapi.serving import catalog

router = APIRouter()


@router.get("/sdapi/v1/loras")
def get_loras(state: State):
    return [LoraItem(**item).model_dump() for item in catalog.loras(state)]


@router.post("/sdapi/v1/refresh-loras")
def refresh_loras(state: State):
    catalog.refresh_loras(state)
    return None
