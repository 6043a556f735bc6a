"""``/sdapi/v1/extra-single-image`` and ``/extra-batch-images``: upscaling on the job queue (A1111's queue lock)."""

from __future__ import annotations

import functools

from fastapi import APIRouter

from sdapi.extras import run_extras
from sdapi.images import decode_image, encode_image
from sdapi.protocol.extras import (
    ExtrasBatchImagesRequest,
    ExtrasBatchImagesResponse,
    ExtrasSingleImageRequest,
    ExtrasSingleImageResponse,
)
from sdapi.routes.deps import State
from sdapi.translate import job_timestamp
from sdapi.upscalers import Tiling

router = APIRouter()


def _extras_job(state, images, req):
    """The job: upscale on the worker, with A1111's ``state.begin()``/``end()`` around it."""
    options = state.options
    state.control.begin(1, job_timestamp())
    state.control.job = "extras"
    try:
        tiling = Tiling.from_options(options)
        upscale = functools.partial(_upscale, state.engine, tiling=tiling)
        outputs, html_info = run_extras(images, req, state.upscalers(), upscale, options.get("enable_pnginfo"))
        fmt, quality = options.get("samples_format"), options.get("jpeg_quality")
        return [encode_image(img, fmt, quality, options.get("enable_pnginfo")) for img in outputs], html_info
    finally:
        state.control.end()


def _upscale(engine, spec, image, scale, tiling):
    return engine.upscale(spec, image, scale, tiling)


@router.post("/sdapi/v1/extra-single-image", response_model=ExtrasSingleImageResponse)
async def extras_single_image_api(req: ExtrasSingleImageRequest, state: State):
    image = decode_image(req.image)
    images, html_info = await state.queue.run_async(functools.partial(_extras_job, state, [image], req), "extras")
    return {"image": images[0], "html_info": html_info}


@router.post("/sdapi/v1/extra-batch-images", response_model=ExtrasBatchImagesResponse)
async def extras_batch_images_api(req: ExtrasBatchImagesRequest, state: State):
    decoded = [decode_image(item.data) for item in req.imageList]
    images, html_info = await state.queue.run_async(functools.partial(_extras_job, state, decoded, req), "extras")
    return {"images": images, "html_info": html_info}
