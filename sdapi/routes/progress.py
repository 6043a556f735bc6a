"""``/progress``, ``/interrupt``, ``/skip``: answered at once, whatever the worker is doing.

Each takes an optional ``id_task`` query parameter (an sdapi extension: the task id of the caller's job, its
``force_task_id``). ``/interrupt`` and ``/skip`` read it from the query without declaring it, so their OpenAPI
entries stay A1111's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from sdapi.protocol import ProgressResponse
from sdapi.protocol.internal import InternalProgressResponse, PendingTasksResponse, ProgressRequest
from sdapi.routes.deps import State
from sdapi.serving import progress as serving

router = APIRouter()


@router.get("/sdapi/v1/progress", response_model=ProgressResponse)
def progressapi(state: State, skip_current_image: bool = False, id_task: str | None = None):
    return serving.progress(state, skip_current_image, id_task)


@router.post("/sdapi/v1/interrupt")
def interruptapi(state: State, request: Request):
    serving.interrupt(state, request.query_params.get("id_task"))
    return {}


@router.post("/sdapi/v1/skip")
def skip(state: State, request: Request):
    serving.skip(state, request.query_params.get("id_task"))
    return None


@router.post("/internal/progress", response_model=InternalProgressResponse)
def progressapi_internal(req: ProgressRequest, state: State):
    return serving.internal_progress(state, req.id_task, req.id_live_preview, req.live_preview)


@router.get("/internal/pending-tasks", response_model=PendingTasksResponse)
def get_pending_tasks(state: State):
    return serving.pending_tasks(state)
