"""``/sdapi/v1/extra-single-image`` and ``/extra-batch-images``: A1111 v1.2.1's postprocessing "Upscale" step.

Upscaler 1 enlarges the image (by ``upscaling_resize``, or to cover ``upscaling_resize_w x _h`` and, with
``upscaling_crop``, centre-cropped to it); upscaler 2, when named and visible, enlarges the same source and is
blended over it. The parameters land in a ``postprocessing`` PNG text chunk (the source image's own chunks are
kept) and, as HTML, in ``html_info``. Face restoration (GFPGAN/CodeFormer) is not available here.
"""

from __future__ import annotations

import html
import logging
import math
from typing import Callable

from PIL import Image

from sdapi.bounds import check_finite, check_pixels
from sdapi.engine.upscalers import UpscalerSpec, find_upscaler
from sdapi.errors import InvalidRequest
from sdapi.infotext import format_params
from sdapi.settings import Limits

log = logging.getLogger("sdapi")

SCALE_BY, SCALE_TO = 0, 1

#: ``(upscaler row, image, scale) -> image`` (the engine's ``upscale``).
Upscale = Callable[[UpscalerSpec, Image.Image, float], Image.Image]


def plaintext_to_html(text: str) -> str:
    """A1111's ``plaintext_to_html``: escaped lines joined by ``<br>``, in one paragraph."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def find_named(name: str | None, upscalers: list[UpscalerSpec]) -> UpscalerSpec | None:
    """The row for an ``upscaler_1/2`` value; ``None`` for "None" or no name.

    Raises:
        AssertionError: an unknown name (A1111's 500 ``could not find upscaler named ...``).
    """
    if name is None or name == "None":
        return None
    spec = find_upscaler(name, upscalers)
    assert spec is not None, f"could not find upscaler named {name}"
    return spec


def check_result_size(image: Image.Image, req, upscalers: list[UpscalerSpec], limits: Limits) -> None:
    """Refuse an extras request whose result (or a model upscaler's intermediate pass) would exceed the server's
    bounds, before any upscaling runs.

    Raises:
        InvalidRequest: naming the size fields.
    """
    if req.resize_mode == SCALE_TO:
        for name in ("upscaling_resize_w", "upscaling_resize_h"):
            if getattr(req, name) is None or getattr(req, name) < 1:
                raise InvalidRequest(f"{name} must be at least 1 with resize_mode 1, got {getattr(req, name)}")
        scale = max(req.upscaling_resize_w / image.width, req.upscaling_resize_h / image.height)
    else:
        check_finite("upscaling_resize", req.upscaling_resize)
        if req.upscaling_resize <= 0:
            raise InvalidRequest(f"upscaling_resize must be positive, got {req.upscaling_resize}")
        scale = req.upscaling_resize
    names = (req.upscaler_1, req.upscaler_2)
    # A model upscaler runs whole passes at its own scale, then shrinks to the target: the largest pass counts.
    passes = max([spec.scale ** math.ceil(math.log(scale, spec.scale)) for spec in upscalers
                  if spec.name in names and spec.is_model and scale > 1 and spec.scale > 1], default=scale)
    largest = max(scale, passes)
    width, height = int(image.width * largest), int(image.height * largest)
    if max(width, height) > limits.max_side:
        raise InvalidRequest(f"upscaling {image.width}x{image.height} makes {width}x{height}, more than this server's "
                             f"limit of {limits.max_side} pixels per side; lower upscaling_resize or its _w/_h")
    check_pixels(f"the upscaled {width}x{height} image", width * height, limits,
                 "lower upscaling_resize or upscaling_resize_w/_h")


def _upscale_one(image: Image.Image, info: dict, spec: UpscalerSpec, req, upscale: Upscale) -> Image.Image:
    """One upscaler over the source, recording what it did in ``info`` (A1111's postprocessing ``upscale``)."""
    if req.resize_mode == SCALE_TO:
        scale = max(req.upscaling_resize_w / image.width, req.upscaling_resize_h / image.height)
        info["Postprocess upscale to"] = f"{req.upscaling_resize_w}x{req.upscaling_resize_h}"
    else:
        scale = req.upscaling_resize
        info["Postprocess upscale by"] = scale
    result = upscale(spec, image, scale)
    if req.resize_mode == SCALE_TO and req.upscaling_crop:
        width, height = req.upscaling_resize_w, req.upscaling_resize_h
        cropped = Image.new("RGB", (width, height))
        cropped.paste(result, box=(width // 2 - result.width // 2, height // 2 - result.height // 2))
        result = cropped
        info["Postprocess crop to"] = f"{width}x{height}"
    return result


def postprocess(image: Image.Image, req, upscalers: list[UpscalerSpec], upscale: Upscale,
                pnginfo: bool = True) -> tuple[Image.Image, str]:
    """One image through the extras: returns the result and its ``postprocessing`` text.

    Raises:
        AssertionError: an unknown upscaler name.
    """
    first = find_named(req.upscaler_1, upscalers)
    second = find_named(req.upscaler_2, [u for u in upscalers if u.name != "None"])
    if req.gfpgan_visibility or req.codeformer_visibility:
        log.warning("gfpgan/codeformer visibility ignored: face restoration is not available")
    info: dict = {}
    result = image.convert("RGB")
    if first is not None:
        upscaled = _upscale_one(result, info, first, req, upscale)
        info["Postprocess upscaler"] = first.name
        if second is not None and req.extras_upscaler_2_visibility > 0:
            blended = _upscale_one(result, info, second, req, upscale)
            upscaled = Image.blend(upscaled, blended, req.extras_upscaler_2_visibility)
            info["Postprocess upscaler 2"] = second.name
        result = upscaled
    text = format_params(info)
    if pnginfo:
        result.info = dict(image.info)
        result.info["postprocessing"] = text
    return result, text


def run_extras(images: list[Image.Image], req, upscalers: list[UpscalerSpec], upscale: Upscale,
               pnginfo: bool = True) -> tuple[list[Image.Image], str]:
    """Every image through the extras; returns the results and ``html_info`` (from the last image, as A1111)."""
    results, text = [], ""
    for image in images:
        result, text = postprocess(image, req, upscalers, upscale, pnginfo)
        results.append(result)
    return results, plaintext_to_html(text)
