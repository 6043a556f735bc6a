"""lora-scripts' (SD-Trainer's) task API as a thin shim over ``/lora/train``, so its users' scripts keep working.

``POST /api/run`` takes the same JSON lora-scripts posts (sd-scripts argument names plus UI keys) and answers
``{"status": "success"|"fail", "message"}`` with HTTP 200 even on errors, as lora-scripts does. Keys our trainer
does not know are dropped with a log line (sd-scripts ignores them too); ``/api/tasks`` maps our job states onto
CREATED / RUNNING / FINISHED / TERMINATED (failed jobs are FINISHED there; ``/lora/train/{id}`` says failed).
"""

from __future__ import annotations

from fastapi import APIRouter, Body

from sdapi.routes.deps import Training
from sdapi.serving import lora_scripts

router = APIRouter(tags=["lora-scripts"])


@router.post("/api/run")
def run_task(training: Training, body: dict = Body(...)):
    return lora_scripts.run_task(training, body)


@router.get("/api/tasks")
def list_tasks(training: Training):
    return lora_scripts.list_tasks(training)


@router.get("/api/tasks/terminate/{task_id}")
def terminate_task(task_id: str, training: Training):
    return lora_scripts.terminate_task(training, task_id)
