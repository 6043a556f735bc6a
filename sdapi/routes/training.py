"""``/lora/train``: LoRA training jobs over HTTP (submit, watch, read loss/log/samples, cancel).

A refused request answers 422 with FastAPI's ``detail`` shape naming the field; a queued job answers 202 at once
(training runs on the device worker; nothing here waits for it).
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse

from sdapi.protocol.training import CancelRequest, TrainRequest
from sdapi.routes.deps import Training

router = APIRouter(tags=["training"])


@router.post("/lora/train", status_code=202)
def start_training(req: TrainRequest, training: Training):
    body = training.submit(req)
    return JSONResponse(status_code=200, content=body) if body["status"] == "dry_run" else body


@router.get("/lora/train")
def list_training(training: Training):
    return {"jobs": training.views()}


@router.get("/lora/train/{job_id}")
def get_training_job(job_id: str, training: Training):
    return training.view(job_id)


@router.get("/lora/train/{job_id}/loss")
def get_training_loss(job_id: str, training: Training, since_step: int = Query(0, ge=0, le=2 ** 53)):
    return training.losses(job_id, since_step)


@router.get("/lora/train/{job_id}/log", response_class=PlainTextResponse)
def get_training_log(job_id: str, training: Training):
    return training.log_text(job_id)


@router.get("/lora/train/{job_id}/samples/{file_name}")
def get_training_sample(job_id: str, file_name: str, training: Training):
    return FileResponse(training.sample_path(job_id, file_name), media_type="image/png")


@router.post("/lora/train/{job_id}/cancel")
def cancel_training(job_id: str, training: Training, req: CancelRequest | None = None):
    return training.cancel(job_id, save_current=bool(req and req.save_current))
