"""``/sdapi/v1/txt2img`` and ``/img2img``: checked at once, then queued for the worker; a client that leaves cancels
its job."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sdapi.img2img_service import img2img_job
from sdapi.jobs import JobCancelled
from sdapi.protocol import (
    ImageToImageResponse,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    TextToImageResponse,
)
from sdapi.routes.deps import State

CLIENT_CLOSED_REQUEST = 499

router = APIRouter()


@router.post("/sdapi/v1/txt2img", response_model=TextToImageResponse)
async def text2imgapi(txt2imgreq: StableDiffusionProcessingTxt2Img, state: State, request: Request):
    return await run_queued(state, state.txt2img_job(txt2imgreq), "txt2img", request)


@router.post("/sdapi/v1/img2img", response_model=ImageToImageResponse)
async def img2imgapi(img2imgreq: StableDiffusionProcessingImg2Img, state: State, request: Request):
    return await run_queued(state, img2img_job(state, img2imgreq), "img2img", request)


async def run_queued(state: State, job, name: str, request: Request):
    """Await ``job`` on the worker; if the client leaves first, cancel it and answer nobody."""
    try:
        return await state.queue.run_async(job, name, client_gone=lambda: client_gone(request))
    except JobCancelled:
        # Nobody reads this; the access log records nginx's "client closed request".
        return Response(status_code=CLIENT_CLOSED_REQUEST)


async def client_gone(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read, so nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
