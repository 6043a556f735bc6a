"""The job for a txt2img or img2img request: checked now, with or without a selectable script."""

from __future__ import annotations

from typing import Any

from sdapi.serving.base import Job, ServerState
from sdapi.serving.generation import check_request
from sdapi.serving.img2img import check_init_images, decode_inputs, decode_mask, img2img_job
from sdapi.serving.scripts import script_job
from sdapi.serving.txt2img import txt2img_job


def txt2img_request(state: ServerState, req, track: bool = True) -> Job:
    """Check a ``/sdapi/v1/txt2img`` request now and return the job that serves it on the worker.

    Args:
        track: list its task id as pending (``/internal/progress``); off for a check whose job is not queued.

    Raises:
        UnknownSampler, Unprocessable, InvalidRequest, KeyError: before anything is queued.
    """
    checked = check_request(state, req, "txt2img")
    job = script_job(state, checked, "txt2img") if req.script_name else txt2img_job(state, checked)
    if track:
        state.task_ids.queued(checked.task_id)
    return job


def img2img_request(state: ServerState, req, track: bool = True) -> Job:
    """Check and decode a ``/sdapi/v1/img2img`` request now; return the job that serves it on the worker.

    Args:
        track: as :func:`txt2img_request`.

    Raises:
        NotFound, ApiError, UnknownSampler, Unprocessable, InvalidRequest: in A1111's order, before queueing.
    """
    check_init_images(req)
    mask = decode_mask(req)
    checked = check_request(state, req, "img2img")
    inputs = decode_inputs(req, mask)
    job = script_job(state, checked, "img2img", inputs) if req.script_name else img2img_job(state, checked, inputs)
    if track:
        state.task_ids.queued(checked.task_id)
    return job


def txt2img(state: ServerState, req) -> dict[str, Any]:
    """Serve one txt2img request synchronously through the queue (CLI, benchmarks and tests)."""
    return state.run_sync(txt2img_request(state, req), "txt2img")
