"""lora-scripts' (SD-Trainer's) task API as a shim over the training service, so its users' scripts keep working.

``POST /api/run`` takes the same JSON lora-scripts posts (sd-scripts argument names plus UI keys) and answers
``{"status": "success"|"fail", "message"}`` with HTTP 200 even on errors, as lora-scripts does. Keys our trainer
does not know are dropped with a log line (sd-scripts ignores them too); ``/api/tasks`` maps our job states onto
CREATED / RUNNING / FINISHED / TERMINATED (failed jobs are FINISHED there; ``/lora/train/{id}`` says failed).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from sdapi.protocol.training import TrainRequest
from sdapi.serving.training import JobConflict, TrainingService
from sdapi.training.errors import ConfigError
from sdapi.training.views import SHIM_STATUS

log = logging.getLogger("sdapi")


def run_task(training: TrainingService, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/run``: submit a lora-scripts config as a training job."""
    known = {k: v for k, v in body.items() if k in TrainRequest.model_fields}
    dropped = sorted(set(body) - set(known))
    if dropped:
        log.info("lora-scripts /api/run: keys not used by sdapi's trainer: %s", ", ".join(dropped))
    try:
        result = training.submit(TrainRequest(**known))
    except ValidationError as exc:
        first = exc.errors()[0]
        return {"status": "fail", "message": f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"}
    except (ConfigError, JobConflict) as exc:
        return {"status": "fail", "message": str(exc)}
    return {"status": "success", "message": f"Training started / 训练开始 ID: {result['job_id']}",
            "data": {"task_id": result["job_id"]}}


def list_tasks(training: TrainingService) -> dict[str, Any]:
    """``GET /api/tasks``: every job with lora-scripts' status names."""
    tasks = [{"id": job["id"], "status": SHIM_STATUS[job["status"]]} for job in training.store.list()]
    return {"status": "success", "data": {"tasks": tasks}}


def terminate_task(training: TrainingService, task_id: str) -> dict[str, Any]:
    """``GET /api/tasks/terminate/{id}``: cancel a job."""
    try:
        training.cancel(task_id)
    except JobConflict as exc:
        return {"status": "fail", "message": str(exc)}
    return {"status": "success", "message": f"Task {task_id} terminated"}
