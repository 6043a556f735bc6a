"""PNG info, memory, checkpoint load/unload and the read-only listings of A1111 v1.2.1."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import (
    EmbeddingsResponse,
    FaceRestorerItem,
    HypernetworkItem,
    MemoryResponse,
    PNGInfoRequest,
    PNGInfoResponse,
    PromptStyleItem,
    RealesrganItem,
    UpscalerItem,
)
from sdapi.protocol.extras import LatentUpscalerModeItem
from sdapi.routes.deps import State
from sdapi.serving import catalog, system

router = APIRouter()


@router.post("/sdapi/v1/png-info", response_model=PNGInfoResponse)
def pnginfoapi(req: PNGInfoRequest):
    return system.png_info(req.image)


@router.get("/sdapi/v1/memory", response_model=MemoryResponse)
def get_memory(state: State):
    return system.memory(state)


@router.get("/sdapi/v1/upscalers", response_model=list[UpscalerItem])
def get_upscalers(state: State):
    return catalog.upscalers(state)


@router.get("/sdapi/v1/latent-upscale-modes", response_model=list[LatentUpscalerModeItem])
def get_latent_upscale_modes():
    return catalog.latent_upscale_modes()


@router.get("/sdapi/v1/hypernetworks", response_model=list[HypernetworkItem])
def get_hypernetworks():
    return catalog.nothing_listed()


@router.get("/sdapi/v1/face-restorers", response_model=list[FaceRestorerItem])
def get_face_restorers():
    return catalog.nothing_listed()


@router.get("/sdapi/v1/realesrgan-models", response_model=list[RealesrganItem])
def get_realesrgan_models(state: State):
    return catalog.realesrgan_models(state)


@router.get("/sdapi/v1/prompt-styles", response_model=list[PromptStyleItem])
def get_prompt_styles(state: State):
    return catalog.prompt_styles(state)


@router.get("/sdapi/v1/embeddings", response_model=EmbeddingsResponse)
def get_embeddings(state: State):
    return catalog.embeddings(state)


@router.post("/sdapi/v1/unload-checkpoint")
def unloadapi(state: State):
    system.unload_checkpoint(state)
    return {}


@router.post("/sdapi/v1/reload-checkpoint")
def reloadapi(state: State):
    system.reload_checkpoint(state)
    return {}
