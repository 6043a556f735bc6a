"""``/sdapi/v1/extra-single-image`` and ``/extra-batch-images``: upscaling on the job queue (A1111's queue lock)."""

from __future__ import annotations

import functools

from fastapi import APIRouter

from sdapi.protocol.extras import (
    ExtrasBatchImagesRequest,
    ExtrasBatchImagesResponse,
    ExtrasSingleImageRequest,
    ExtrasSingleImageResponse,
)
from sdapi.routes.deps import State
from sdapi.serving.extras import batch_images_job, single_image_job

router = APIRouter()


@router.post("/sdapi/v1/extra-single-image", response_model=ExtrasSingleImageResponse)
async def extras_single_image_api(req: ExtrasSingleImageRequest, state: State):
    return await state.run_queued(functools.partial(single_image_job, state, req), "extras")


@router.post("/sdapi/v1/extra-batch-images", response_model=ExtrasBatchImagesResponse)
async def extras_batch_images_api(req: ExtrasBatchImagesRequest, state: State):
    return await state.run_queued(functools.partial(batch_images_job, state, req), "extras")
