"""``/sdapi/v1/txt2img``: checked at once, then queued for the worker; a client that leaves cancels its job."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sdapi.protocol import StableDiffusionProcessingTxt2Img, TextToImageResponse
from sdapi.jobs import JobCancelled
from sdapi.routes.deps import State

CLIENT_CLOSED_REQUEST = 499

router = APIRouter()


@router.post("/sdapi/v1/txt2img", response_model=TextToImageResponse)
async def text2imgapi(txt2imgreq: StableDiffusionProcessingTxt2Img, state: State, request: Request):
    job = state.txt2img_job(txt2imgreq)
    try:
        return await state.queue.run_async(job, "txt2img", client_gone=lambda: client_gone(request))
    except JobCancelled:
        # Nobody reads this; the access log records nginx's "client closed request".
        return Response(status_code=CLIENT_CLOSED_REQUEST)


async def client_gone(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read, so nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
