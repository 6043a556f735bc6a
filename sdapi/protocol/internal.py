"""A1111's ``/internal`` progress models (``modules/progress.py``, v1.2.1; ``/internal/pending-tasks`` is v1.8+)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InternalProgressResponse", "PendingTasksResponse", "ProgressRequest"]


class ProgressRequest(BaseModel):
    model_config = ConfigDict(title="ProgressRequest")

    id_task: Optional[str] = Field(default=None, title="Task ID", description="id of the task to get progress for")
    id_live_preview: int = Field(default=-1, title="Live preview image ID",
                                 description="id of last received last preview image")
    live_preview: bool = Field(default=True, title="Include live preview",
                               description="boolean flag indicating whether to include the live preview image")


class InternalProgressResponse(BaseModel):
    model_config = ConfigDict(title="ProgressResponse")

    active: bool = Field(title="Whether the task is being worked on right now")
    queued: bool = Field(title="Whether the task is in queue")
    completed: bool = Field(title="Whether the task has already finished")
    progress: Optional[float] = Field(default=None, title="Progress", description="The progress with a range of 0 to 1")
    eta: Optional[float] = Field(default=None, title="ETA in secs")
    live_preview: Optional[str] = Field(default=None, title="Live preview image",
                                        description="Current live preview; a data: uri")
    id_live_preview: Optional[int] = Field(default=None, title="Live preview image ID",
                                           description="Send this together with next request to prevent receiving "
                                                       "same image")
    textinfo: Optional[str] = Field(default=None, title="Info text", description="Info text used by WebUI.")


class PendingTasksResponse(BaseModel):
    model_config = ConfigDict(title="PendingTasksResponse")

    size: int = Field(title="Pending task size")
    tasks: list[str] = Field(title="Pending task ids")
