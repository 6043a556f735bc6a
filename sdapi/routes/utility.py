"""PNG info, memory, checkpoint load/unload and the read-only listings of A1111 v1.2.1."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.images import decode_image
from sdapi.pnginfo import png_info
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
from sdapi.system import ram_usage
from sdapi.upscalers import LATENT_MODES

router = APIRouter()


@router.post("/sdapi/v1/png-info", response_model=PNGInfoResponse)
def pnginfoapi(req: PNGInfoRequest):
    if not req.image.strip():
        return {"info": "", "items": {}}
    return png_info(decode_image(req.image.strip()))


@router.get("/sdapi/v1/memory", response_model=MemoryResponse)
def get_memory(state: State):
    return {"ram": ram_usage(), "cuda": state.engine.memory()}


@router.get("/sdapi/v1/upscalers", response_model=list[UpscalerItem])
def get_upscalers(state: State):
    # Model files are listed while they are in models/ESRGAN, models/RealESRGAN or models/SwinIR.
    return [u.as_item() for u in state.upscalers()]


@router.get("/sdapi/v1/latent-upscale-modes", response_model=list[LatentUpscalerModeItem])
def get_latent_upscale_modes():
    # Added in A1111 v1.4; v1.2.1 answers 404. Clients use it to list hires fix choices.
    return [{"name": mode.name} for mode in LATENT_MODES]


@router.get("/sdapi/v1/hypernetworks", response_model=list[HypernetworkItem])
def get_hypernetworks():
    # Hypernetworks are not supported: none are listed, so none can be asked for.
    return []


@router.get("/sdapi/v1/face-restorers", response_model=list[FaceRestorerItem])
def get_face_restorers():
    # No face restoration model ships with sdapi; restore_faces is accepted and logged as not applied.
    return []


@router.get("/sdapi/v1/realesrgan-models", response_model=list[RealesrganItem])
def get_realesrgan_models(state: State):
    # The Real-ESRGAN files present in models/RealESRGAN (A1111 lists its own releases, downloaded or not).
    return [{"name": u.name, "path": str(u.model_path), "scale": u.scale} for u in state.upscalers()
            if u.model_path is not None and u.model_path.parent.name == "RealESRGAN"]


@router.get("/sdapi/v1/prompt-styles", response_model=list[PromptStyleItem])
def get_prompt_styles(state: State):
    return [style.as_item() for style in state.styles.styles().values()]


@router.get("/sdapi/v1/embeddings", response_model=EmbeddingsResponse)
def get_embeddings():
    # Textual-inversion embeddings are not loaded by sdapi yet.
    return {"loaded": {}, "skipped": {}}


@router.post("/sdapi/v1/unload-checkpoint")
def unloadapi(state: State):
    state.unload_checkpoint()
    return {}


@router.post("/sdapi/v1/reload-checkpoint")
def reloadapi(state: State):
    state.reload_checkpoint()
    return {}
