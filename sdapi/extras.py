"""``/sdapi/v1/extra-single-image`` and ``/extra-batch-images``: A1111 v1.2.1's postprocessing "Upscale" step.

Upscaler 1 enlarges the image (by ``upscaling_resize``, or to cover ``upscaling_resize_w x _h`` and, with
``upscaling_crop``, centre-cropped to it); upscaler 2, when named and visible, enlarges the same source and is
blended over it. The parameters land in a ``postprocessing`` PNG text chunk (the source image's own chunks are
kept) and, as HTML, in ``html_info``. Face restoration (GFPGAN/CodeFormer) is not available here.
"""

from __future__ import annotations

import html
import logging
from typing import Callable

from PIL import Image

from sdapi.infotext import format_params
from sdapi.engine.upscalers import UpscalerSpec, find_upscaler

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
