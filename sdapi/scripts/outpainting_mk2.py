"""A1111 v1.2.1's "Outpainting mk2" (img2img): grow the image one side at a time, the new strip filled with
matched noise (:mod:`sdapi.scripts.matched_noise`) and inpainted.

Per batch (``n_iter`` of them), ``batch_size`` copies of the init image grow left, right, up, then down, each by
that side's share of the canvas (:func:`sdapi.scripts.outpainting.expansion`). One side's step, for each copy:
paste it on a black image rounded up to multiples of 64, fill the new strip (less ``mask_blur`` pixels) with
matched noise, and cut from the grown edge a region as long as the request's width (height) allows; all copies'
regions go through one img2img call with masked content "original", "whole picture" inpainting, the image mask
blurred by ``4 * mask_blur`` and a latent mask ``2 * mask_blur`` short of the original. The results are pasted
back and the copy cropped to its grown size. Every call uses the request's seed (A1111 never moves it on).

A processing side that is not a multiple of 8 (A1111 would sample at the size rounded down and paste that) runs
at the size rounded down, its region resized to it. The answer is the grown images, after a grid of them when
``return_grid`` is on and (``grid_only_if_multiple``) there are two or more; ``index_of_first_image`` stays 0, as
in A1111. The images carry no infotext (A1111's are new images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from sdapi.bounds import check_finite, check_pixels
from sdapi.errors import InvalidRequest
from sdapi.scripts.args import DIRECTIONS as DIRECTIONS_KIND
from sdapi.scripts.args import FLOAT, HTML, INT, ArgSpec
from sdapi.scripts.matched_noise import matched_noise
from sdapi.scripts.outpainting import DIRECTIONS, Expansion, check_expansion, expansion
from sdapi.scripts.processing import ProcessCall, Processed, Runner, ScriptOutput, ScriptSave, processed_info
from sdapi.settings import Limits
from sdapi.translate import image_grid

TITLE = "Outpainting mk2"
ARGS = (
    ArgSpec("info", "", HTML, '<p style="margin-bottom:0.75em">Recommended settings: Sampling Steps: 80-100, '
                              'Sampler: Euler a, Denoising strength: 0.8</p>'),
    ArgSpec("pixels", "Pixels to expand", INT, 128, minimum=8, maximum=256, step=8),
    ArgSpec("mask_blur", "Mask blur", INT, 8, minimum=0, maximum=64, step=1),
    ArgSpec("direction", "Outpainting direction", DIRECTIONS_KIND, list(DIRECTIONS), choices=DIRECTIONS),
    ArgSpec("noise_q", "Fall-off exponent (lower=higher detail)", FLOAT, 1.0, minimum=0.0, maximum=4.0, step=0.01),
    ArgSpec("color_variation", "Color variation", FLOAT, 0.05, minimum=0.0, maximum=1.0, step=0.01),
)
FILL_ORIGINAL = 1


@dataclass
class Mk2Plan:
    """An Outpainting mk2 request, checked."""

    req: Any
    mask_blur: int
    noise_q: float
    color_variation: float
    grown: Expansion

    @property
    def job_count(self) -> int:
        """A1111's: one call per grown side per batch."""
        return self.req.n_iter * self.grown.sides


@dataclass(frozen=True)
class Side:
    """One growing step: which side, and by how much."""

    name: str
    pixels: int

    @property
    def horizontal(self) -> bool:
        return self.name in ("left", "right")


def plan_mk2(req, args: dict[str, Any], image: Image.Image, limits: Limits) -> Mk2Plan:
    """Check the arguments and bound the work before anything runs.

    Raises:
        InvalidRequest: too few pixels, values that are not numbers, a canvas or image count beyond the bounds.
    """
    pixels, mask_blur = args["pixels"], args["mask_blur"]
    check_finite("script_args noise_q", args["noise_q"])
    check_finite("script_args color_variation", args["color_variation"])
    if pixels < 8:
        raise InvalidRequest(f"script_args pixels must be at least 8 (A1111's UI minimum), got {pixels}")
    grown = expansion(image.width, image.height, pixels, args["direction"])
    check_expansion(pixels, mask_blur, grown, limits)
    if grown.sides == 0:
        raise InvalidRequest("Outpainting mk2 has nothing to do: choose a direction")
    check_pixels("the outpainting canvas times batch_size", grown.width * grown.height * req.batch_size, limits,
                 "lower pixels or batch_size")
    images = req.n_iter * req.batch_size * grown.sides
    if images > limits.max_images:
        raise InvalidRequest(f"Outpainting mk2 would generate {images} images, more than this server's limit of "
                             f"{limits.max_images}")
    return Mk2Plan(req, mask_blur, args["noise_q"], args["color_variation"], grown)


def new_area_mask(size: tuple[int, int], side: Side, inset: int, known_w: int, known_h: int) -> Image.Image:
    """White everywhere but the known image, which stops ``side.pixels + inset`` from the grown edge."""
    mask = Image.new("RGB", size, "white")
    edge = side.pixels + inset
    box = (edge if side.name == "left" else 0, edge if side.name == "up" else 0,
           mask.width - edge if side.name == "right" else known_w,
           mask.height - edge if side.name == "down" else known_h)
    if box[2] >= box[0] and box[3] >= box[1]:  # else the region is all new: nothing known to keep
        ImageDraw.Draw(mask).rectangle(box, fill="black")
    return mask


def noised(image: Image.Image, mask: Image.Image, plan: Mk2Plan) -> Image.Image:
    """``image`` with its white-masked area filled by matched noise."""
    array = matched_noise(np.asarray(image) / 255.0, np.asarray(mask) / 255.0, plan.noise_q, plan.color_variation)
    return Image.fromarray(np.clip(array * 255.0, 0.0, 255.0).astype(np.uint8), mode="RGB")


def grow(images: list[Image.Image], side: Side, plan: Mk2Plan, runner: Runner) -> tuple[list[Image.Image], Processed]:
    """One side's step for every copy (A1111's ``expand``)."""
    req = plan.req
    left, up = side.name == "left", side.name == "up"
    canvases, regions, masks = [], [], []
    for image in images:
        grown_w = image.width + (side.pixels if side.horizontal else 0)
        grown_h = image.height + (0 if side.horizontal else side.pixels)
        padded = Image.new("RGB", (math.ceil(grown_w / 64) * 64, math.ceil(grown_h / 64) * 64))
        padded.paste(image, (side.pixels if left else 0, side.pixels if up else 0))
        mask = new_area_mask(padded.size, side, plan.mask_blur, grown_w, grown_h)
        canvas = noised(padded, mask, plan)
        width = min(req.width, grown_w) if side.horizontal else padded.width
        height = padded.height if side.horizontal else min(req.height, grown_h)
        box = (0 if left else canvas.width - width, 0 if up else canvas.height - height,
               width if left else canvas.width, height if up else canvas.height)
        canvases.append(canvas)
        regions.append(canvas.crop(box))
        masks.append(mask.crop(box))
    latent_mask = new_area_mask((width, height), side, plan.mask_blur * 2, grown_w, grown_h)
    call_req = req.model_copy(update={
        "width": width // 8 * 8, "height": height // 8 * 8, "n_iter": 1, "resize_mode": 0,
        "mask_blur": plan.mask_blur * 4, "inpainting_fill": FILL_ORIGINAL, "inpaint_full_res": False})
    if (width, height) != (call_req.width, call_req.height):
        latent_mask = latent_mask.resize((call_req.width, call_req.height))
    processed = runner.process(ProcessCall(call_req, regions, masks[-1], latent_mask))
    grown_images = []
    for index, canvas in enumerate(canvases):
        if index < len(processed.images):
            result = processed.images[index]
            canvas.paste(result, (0 if left else canvas.width - result.width, 0 if up else canvas.height - result.height))
        grown_images.append(canvas.crop((0, 0, grown_w, grown_h)))
    return grown_images, processed


def grid_rows(count: int, options) -> int:
    """Rows of A1111 v1.2.1's ``image_grid(images)`` (its ``batch_size`` left at 1)."""
    rows = int(options.get("n_rows"))
    if rows == 0:
        rows = 1
    elif rows < 0:
        if options.get("grid_prevent_empty_spots"):
            rows = math.floor(math.sqrt(count))
            while count % rows != 0:
                rows -= 1
        else:
            rows = round(math.sqrt(count))
    return min(rows, count)


def run_mk2(plan: Mk2Plan, runner: Runner) -> ScriptOutput:
    """Grow every copy of every batch (on the worker)."""
    req, grown = plan.req, plan.grown
    sides = [Side(name, pixels) for name, pixels in zip(DIRECTIONS, (grown.left, grown.right, grown.up, grown.down))
             if pixels > 0]
    first: Processed | None = None
    last: Processed | None = None
    results: list[Image.Image] = []
    for _ in range(req.n_iter):
        images = [runner.images[0].convert("RGB")] * req.batch_size
        for side in sides:
            images, last = grow(images, side, plan, runner)
            first = first or last
        results += images
    assert first is not None and last is not None  # the plan has a side to grow
    answer = list(results)
    options = runner.options
    saves = [ScriptSave(image, False, "", last.seed, req.prompt, last.first_infotext, last.info)
             for image in results] if options.get("samples_save") else []
    if options.get("return_grid") and not (len(results) < 2 and options.get("grid_only_if_multiple")):
        grid = image_grid(results, grid_rows(len(results), options))
        answer = [grid] + answer
        if options.get("grid_save"):
            saves.append(ScriptSave(grid, True, "grid", last.seed, req.prompt, last.first_infotext, last.info,
                                    short_filename=not options.get("grid_extended_filename")))
    return ScriptOutput(answer, processed_info(last, first.seed, first.first_infotext), saves)
