"""``/agent-scheduler/v1``: the Agent Scheduler extension's API (queued tasks, persisted, with callbacks), plus
``/task/{id}/events`` (Server-Sent Events, sdapi's own). The extension's deprecated paths are served too."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from sdapi.protocol.tasks import (
    HistoryResponse,
    Img2ImgApiTaskArgs,
    QueueStatusResponse,
    QueueTaskResponse,
    StringRequestBody,
    Txt2ImgApiTaskArgs,
    UpdateTaskArgs,
)
from sdapi.routes.deps import State
from sdapi.serving.tasks import MAX_PAGE, TaskService, not_found, task_service

router = APIRouter(prefix="/agent-scheduler/v1", tags=["agent-scheduler"])


def get_tasks(state: State) -> TaskService:
    return task_service(state)


Tasks = Annotated[TaskService, Depends(get_tasks)]
TaskId = Annotated[str, Path(max_length=64)]
OverId = Annotated[str, Path(max_length=64)]
Limit = Annotated[int, Query(ge=0, le=MAX_PAGE, description=f"at most {MAX_PAGE}; 0: {MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, le=2 ** 31)]


@router.get("/samplers", response_model=list[str])
def get_samplers(tasks: Tasks):
    return tasks.samplers()


@router.get("/sd-models", response_model=list[str])
def get_sd_models(tasks: Tasks):
    return tasks.sd_models()


@router.post("/queue/txt2img", response_model=QueueTaskResponse)
def queue_txt2img(body: Txt2ImgApiTaskArgs, tasks: Tasks):
    return tasks.queue_task("txt2img", body)


@router.post("/queue/img2img", response_model=QueueTaskResponse)
def queue_img2img(body: Img2ImgApiTaskArgs, tasks: Tasks):
    return tasks.queue_task("img2img", body)


@router.get("/queue", response_model=QueueStatusResponse)
def queue_status(tasks: Tasks, limit: Limit = 20, offset: Offset = 0):
    return tasks.queue_status(limit, offset)


@router.get("/export")
def export_queue(tasks: Tasks, limit: Limit = MAX_PAGE, offset: Offset = 0):
    return tasks.export(limit, offset)


@router.post("/import")
def import_queue(body: StringRequestBody, tasks: Tasks):
    return tasks.import_tasks(body.content)


@router.get("/history", response_model=HistoryResponse)
def history(tasks: Tasks, status: Annotated[Optional[str], Query(max_length=32)] = None, limit: Limit = 20,
            offset: Offset = 0):
    return tasks.history(status, limit, offset)


@router.get("/task/{task_id}")
def get_task(task_id: TaskId, tasks: Tasks):
    return tasks.task(task_id)


@router.get("/task/{task_id}/position")
def get_task_position(task_id: TaskId, tasks: Tasks):
    return tasks.position(task_id)


@router.put("/task/{task_id}")
def update_task(task_id: TaskId, body: UpdateTaskArgs, tasks: Tasks):
    return tasks.update(task_id, body.name, body.checkpoint, body.params)


@router.post("/run/{task_id}", deprecated=True)
@router.post("/task/{task_id}/run")
def run_task(task_id: TaskId, tasks: Tasks):
    return tasks.run(task_id)


@router.post("/requeue/{task_id}", deprecated=True)
@router.post("/task/{task_id}/requeue")
def requeue_task(task_id: TaskId, tasks: Tasks):
    return tasks.requeue(task_id)


@router.post("/task/requeue-failed")
def requeue_failed_tasks(tasks: Tasks):
    return tasks.requeue_failed()


@router.post("/delete/{task_id}", deprecated=True)
@router.delete("/task/{task_id}")
def delete_task(task_id: TaskId, tasks: Tasks):
    return tasks.delete(task_id)


@router.post("/move/{task_id}/{over_id}", deprecated=True)
@router.post("/task/{task_id}/move/{over_id}")
def move_task(task_id: TaskId, over_id: OverId, tasks: Tasks):
    return tasks.move(task_id, over_id)


@router.post("/bookmark/{task_id}", deprecated=True)
@router.post("/task/{task_id}/bookmark")
def bookmark_task(task_id: TaskId, tasks: Tasks):
    return tasks.set_bookmark(task_id, True)


@router.post("/unbookmark/{task_id}", deprecated=True)
@router.post("/task/{task_id}/unbookmark")
def unbookmark_task(task_id: TaskId, tasks: Tasks):
    return tasks.set_bookmark(task_id, False)


@router.post("/rename/{task_id}", deprecated=True)
@router.post("/task/{task_id}/rename")
def rename_task(task_id: TaskId, name: str, tasks: Tasks):
    return tasks.rename(task_id, name)


@router.get("/results/{task_id}", deprecated=True)
@router.get("/task/{task_id}/results")
def get_task_results(task_id: TaskId, tasks: Tasks, zip: bool = False):
    if not zip:
        return tasks.results_json(task_id)
    archive, refusal = tasks.results_zip(task_id)
    if archive is None:
        return refusal
    return Response(archive, media_type="application/zip",
                    headers={"Content-Disposition": f"attachment; filename=results-{task_id}.zip"})


@router.get("/task/{task_id}/events", response_class=StreamingResponse)
async def task_events(task_id: TaskId, tasks: Tasks, request: Request):
    if not tasks.exists(task_id):
        return JSONResponse(status_code=404, content=not_found())
    tasks.check_stream_room()
    return StreamingResponse(tasks.events(task_id, request.is_disconnected), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/pause", deprecated=True)
@router.post("/queue/pause")
def pause_queue(tasks: Tasks):
    return tasks.pause()


@router.post("/resume", deprecated=True)
@router.post("/queue/resume")
def resume_queue(tasks: Tasks):
    return tasks.resume()


@router.post("/queue/clear")
def clear_queue(tasks: Tasks):
    return tasks.clear_queue()


@router.post("/history/clear")
def clear_history(tasks: Tasks):
    return tasks.clear_history()
