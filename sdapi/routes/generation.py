"""``/sdapi/v1/txt2img`` and ``/img2img``: checked off the event loop, then queued for the worker; a client that
leaves cancels its job."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request, Response

from sdapi.protocol import (
    ImageToImageResponse,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    TextToImageResponse,
)
from sdapi.routes.deps import State
from sdapi.serving.base import JobCancelled
from sdapi.serving.requests import img2img_request, txt2img_request

CLIENT_CLOSED_REQUEST = 499

router = APIRouter()


@router.post("/sdapi/v1/txt2img", response_model=TextToImageResponse)
async def text2imgapi(txt2imgreq: StableDiffusionProcessingTxt2Img, state: State, request: Request):
    return await run_queued(state, functools.partial(txt2img_request, state, txt2imgreq), "txt2img", request)


@router.post("/sdapi/v1/img2img", response_model=ImageToImageResponse)
async def img2imgapi(img2imgreq: StableDiffusionProcessingImg2Img, state: State, request: Request):
    return await run_queued(state, functools.partial(img2img_request, state, img2imgreq), "img2img", request)


async def run_queued(state: State, prepare, name: str, request: Request):
    """Check the request (``prepare``) off the event loop and await its job; if the client leaves first, cancel
    the job and answer nobody."""
    try:
        return await state.run_queued(prepare, name, client_gone=lambda: client_gone(request))
    except JobCancelled:
        # Nobody reads this; the access log records nginx's "client closed request".
        return Response(status_code=CLIENT_CLOSED_REQUEST)


async def client_gone(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read, so nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
