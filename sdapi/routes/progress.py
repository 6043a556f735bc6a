"""``/progress``, ``/interrupt``, ``/skip``: answered at once, whatever the worker is doing."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import ProgressResponse
from sdapi.routes.deps import State
from sdapi.serving import progress as serving

router = APIRouter()


@router.get("/sdapi/v1/progress", response_model=ProgressResponse)
def progressapi(state: State, skip_current_image: bool = False):
    return serving.progress(state, skip_current_image)


@router.post("/sdapi/v1/interrupt")
def interruptapi(state: State):
    serving.interrupt(state)
    return {}


@router.post("/sdapi/v1/skip")
def skip(state: State):
    serving.skip(state)
    return None
