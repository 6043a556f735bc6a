"""``/sdapi/v1/txt2img`` (plain ``def``: the blocking job runs in the threadpool, the event loop stays free)."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import StableDiffusionProcessingTxt2Img, TextToImageResponse
from sdapi.routes.deps import State

router = APIRouter()


@router.post("/sdapi/v1/txt2img", response_model=TextToImageResponse)
def text2imgapi(txt2imgreq: StableDiffusionProcessingTxt2Img, state: State):
    return state.txt2img(txt2imgreq)
