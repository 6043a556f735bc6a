"""``/agent-scheduler/v1``: the Agent Scheduler extension's wire models (ArtVentureX/sd-webui-agent-scheduler).

The queue requests are A1111's txt2img/img2img requests plus ``checkpoint``, ``vae`` and ``callback_url``; the
task record is the extension's ``TaskModel`` (its field names and order), with sdapi's additions at the end.
No logic here: :mod:`sdapi.serving.tasks` checks what the fields mean.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from .coercion import LaxStr
from .img2img import StableDiffusionProcessingImg2Img
from .txt2img import StableDiffusionProcessingTxt2Img

__all__ = [
    "Txt2ImgApiTaskArgs", "Img2ImgApiTaskArgs", "QueueTaskResponse", "TaskModel", "QueueStatusResponse",
    "HistoryResponse", "UpdateTaskArgs", "StringRequestBody", "ResponseStatus", "TASK_FIELDS",
]

TASK_FIELDS = ("checkpoint", "vae", "callback_url")
"""The fields a queue request adds to A1111's request."""


class Txt2ImgApiTaskArgs(StableDiffusionProcessingTxt2Img):
    model_config = ConfigDict(title="Txt2ImgApiTaskArgs")

    checkpoint: Optional[LaxStr] = Field(None, description="checkpoint title, file name or hash for this task "
                                                           "(as override_settings.sd_model_checkpoint)")
    vae: Optional[LaxStr] = Field(None, description="accepted and recorded, not applied (override_settings.sd_vae is)")
    callback_url: Optional[LaxStr] = Field(None, description="http(s) URL that receives the images when the "
                                                             "task ends (multipart POST)")


class Img2ImgApiTaskArgs(StableDiffusionProcessingImg2Img):
    model_config = ConfigDict(title="Img2ImgApiTaskArgs")

    checkpoint: Optional[LaxStr] = Field(None, description="checkpoint title, file name or hash for this task "
                                                           "(as override_settings.sd_model_checkpoint)")
    vae: Optional[LaxStr] = Field(None, description="accepted and recorded, not applied (override_settings.sd_vae is)")
    callback_url: Optional[LaxStr] = Field(None, description="http(s) URL that receives the images when the "
                                                             "task ends (multipart POST)")


class QueueTaskResponse(BaseModel):
    task_id: str = Field(title="Task Id")


class TaskModel(BaseModel):
    """A task as listed: the extension's fields, then sdapi's (``attempts``, ``callback``)."""

    id: str = Field(title="Task Id")
    api_task_id: Optional[str] = Field(None, title="API Task Id")
    api_task_callback: Optional[str] = Field(None, title="API Task Callback")
    name: Optional[str] = Field(None, title="Task Name")
    type: str = Field(title="Task Type", description="Either txt2img or img2img")
    status: str = Field("pending", title="Task Status",
                        description="pending, running, done, failed or interrupted")
    params: dict[str, Any] = Field(title="Task Parameters", description="The request, images left out")
    priority: Optional[int] = Field(None, title="Task Priority")
    position: Optional[int] = Field(None, title="Task Position", description="place among pending tasks (0: next)")
    result: Optional[str] = Field(None, title="Task Result", description="JSON text: images and infotexts, or "
                                                                         "the error of a failed task")
    bookmarked: Optional[bool] = Field(None, title="Is task bookmarked")
    created_at: Optional[Union[int, str]] = Field(None, title="Task Created At",
                                                  description="ms timestamp in lists, ISO 8601 for one task")
    updated_at: Optional[Union[int, str]] = Field(None, title="Task Updated At")
    # sdapi's additions
    attempts: int = Field(0, description="how many times the task was started (a restart re-runs a running task "
                                         "once)")
    callback: Optional[dict[str, Any]] = Field(None, description="the callback's delivery: status (pending, "
                                                                 "delivered, failed), attempts, http_status")


class QueueStatusResponse(BaseModel):
    current_task_id: Optional[str] = Field(None, title="Current Task Id", description="The running task's id")
    pending_tasks: list[TaskModel] = Field(title="Pending Tasks",
                                           description="the running task first, then the pending ones")
    total_pending_tasks: int = Field(title="Queue length")
    paused: bool = Field(title="Paused", description="Whether the queue is paused")


class HistoryResponse(BaseModel):
    tasks: list[TaskModel] = Field(title="Tasks")
    total: int = Field(title="Task count")


class UpdateTaskArgs(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Optional[str] = Field(None, title="Task Name")
    checkpoint: Optional[str] = None
    params: Optional[dict[str, Any]] = Field(None, title="Task Parameters",
                                             description="request fields to change (checked as when queued)")


class StringRequestBody(BaseModel):
    content: str = Field(description="a JSON list of exported tasks")


class ResponseStatus(BaseModel):
    success: bool
    message: str
