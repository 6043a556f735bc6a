"""``/progress``, ``/interrupt``, ``/skip``: answered at once, whatever the worker is doing."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import ProgressResponse
from sdapi.protocol.internal import InternalProgressResponse, PendingTasksResponse, ProgressRequest
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


@router.post("/internal/progress", response_model=InternalProgressResponse)
def progressapi_internal(req: ProgressRequest, state: State):
    return serving.internal_progress(state, req.id_task, req.id_live_preview, req.live_preview)


@router.get("/internal/pending-tasks", response_model=PendingTasksResponse)
def get_pending_tasks(state: State):
    return serving.pending_tasks(state)
