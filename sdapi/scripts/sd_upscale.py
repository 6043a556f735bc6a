"""A1111 v1.2.1's "SD upscale" (img2img): enlarge the init image with an upscaler, then img2img it tile by tile.

The image (transparency flattened) is enlarged by ``scale_factor`` (not at all with "None"), cut into tiles of the
request's ``width x height`` overlapping by ``overlap`` (:mod:`sdapi.scripts.tiles`), and the tiles are run
``batch_size`` at a time, each batch one img2img call with the request's mask still set, as A1111 leaves
``p.image_mask``. Seeds: fixed once; upscale ``n`` (of ``n_iter``) starts at ``seed + n`` and each batch after the
first starts at the previous batch's first seed + 1 (so neighbouring batches share seeds, as in A1111). Tiles
are blended back; each result is one image, without an infotext of its own (A1111's combined image has none).
``info`` is A1111's ``Processed(p, images, seed, first call's infotext)``.

``upscaler_index`` is what A1111's ``run`` takes: an index into ``/sdapi/v1/upscalers`` or an upscaler's name in
any case (A1111's own API test sends ``"Lanczos"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from sdapi.bounds import check_finite, check_pixels
from sdapi.engine.upscalers import UpscalerSpec
from sdapi.errors import InvalidRequest
from sdapi.resize import flatten
from sdapi.scripts.args import FLOAT, HTML, INT, UPSCALER, ArgSpec
from sdapi.scripts.processing import ProcessCall, Processed, Runner, ScriptOutput, ScriptSave, processed_info
from sdapi.scripts.tiles import combine_grid, split_grid, tile_counts
from sdapi.seeds import resolve_seed
from sdapi.settings import Limits
from sdapi.translate import ScriptOverrides

TITLE = "SD upscale"
ARGS = (
    ArgSpec("info", "", HTML, '<p style="margin-bottom:0.75em">Will upscale the image by the selected scale factor; '
                              'use width and height sliders to set tile size</p>'),
    ArgSpec("overlap", "Tile overlap", INT, 64, minimum=0, maximum=256, step=16),
    ArgSpec("upscaler_index", "Upscaler", UPSCALER, None),
    ArgSpec("scale_factor", "Scale Factor", FLOAT, 2.0, minimum=1.0, maximum=4.0, step=0.05),
)


@dataclass
class UpscalePlan:
    """An SD upscale request, checked.

    Args:
        req: the request.
        upscaler: the upscaler row.
        scale: ``scale_factor``.
        overlap: tile overlap in pixels.
        tiles: tiles per upscale.
        batch_count: img2img calls per upscale.
    """

    req: Any
    upscaler: UpscalerSpec
    scale: float
    overlap: int
    tiles: int
    batch_count: int

    @property
    def job_count(self) -> int:
        """A1111's ``state.job_count``: every batch of every upscale."""
        return self.batch_count * self.req.n_iter


def find_upscaler_arg(value: Any, upscalers: list[UpscalerSpec]) -> UpscalerSpec:
    """The upscaler ``upscaler_index`` names (``None``: the first, A1111's UI default).

    Raises:
        ValueError: an unknown name (A1111's ``list.index`` error, a 500).
        IndexError: an index past the list (A1111's 500).
    """
    if value is None:
        return upscalers[0]
    if isinstance(value, str):
        names = [spec.name.lower() for spec in upscalers]
        if value.lower() not in names:
            raise ValueError(f"{value.lower()!r} is not in list")
        return upscalers[names.index(value.lower())]
    if not -len(upscalers) <= value < len(upscalers):
        raise IndexError("list index out of range")
    return upscalers[value]


def upscaled_size(image: Image.Image, upscaler: UpscalerSpec, scale: float) -> tuple[int, int]:
    """The size the tiles are cut from (A1111 skips the upscaler named "None")."""
    if upscaler.name == "None":
        return image.size
    return int(image.width * scale), int(image.height * scale)


def plan_sd_upscale(req, args: dict[str, Any], image: Image.Image, upscalers: list[UpscalerSpec],
                    limits: Limits) -> UpscalePlan:
    """Check the arguments and bound the work before anything runs.

    Raises:
        ValueError, IndexError: A1111's errors for an unknown upscaler.
        InvalidRequest: a scale or overlap that cannot work, or more work than the server's bounds.
    """
    upscaler = find_upscaler_arg(args["upscaler_index"], upscalers)
    scale, overlap = args["scale_factor"], args["overlap"]
    check_finite("script_args scale_factor", scale)
    if scale <= 0:
        raise InvalidRequest(f"script_args scale_factor must be positive, got {scale}")
    if not 0 <= overlap < min(req.width, req.height):
        raise InvalidRequest(f"script_args overlap must be at least 0 and smaller than the tile size "
                             f"{req.width}x{req.height}, got {overlap}")
    width, height = upscaled_size(image, upscaler, scale)
    largest = scale
    if upscaler.is_model and scale > 1 and upscaler.scale > 1:
        # A model runs whole passes at its own scale before shrinking to the target: the largest pass counts.
        largest = max(scale, upscaler.scale ** math.ceil(math.log(scale, upscaler.scale)))
    if max(image.width * largest, image.height * largest) > limits.max_side:
        raise InvalidRequest(f"SD upscale of {image.width}x{image.height} by {scale} exceeds this server's limit of "
                             f"{limits.max_side} pixels per side; lower scale_factor")
    check_pixels("the SD upscaled image", int(image.width * largest) * int(image.height * largest), limits,
                 "lower scale_factor")
    columns, rows = tile_counts(width, height, req.width, req.height, overlap)
    if columns < 1 or rows < 1:
        raise InvalidRequest(f"SD upscale: the {width}x{height} image is smaller than the tile overlap {overlap}")
    tiles = columns * rows
    batch_count = math.ceil(tiles / req.batch_size)
    images = batch_count * req.batch_size * req.n_iter
    if images > limits.max_images:
        raise InvalidRequest(f"SD upscale would generate {images} tiles ({columns}x{rows} per upscale in batches of "
                             f"{req.batch_size}, {req.n_iter} times), more than this server's limit of "
                             f"{limits.max_images} images; lower scale_factor, overlap or n_iter, or raise "
                             "width/height")
    return UpscalePlan(req, upscaler, scale, overlap, tiles, batch_count)


def run_sd_upscale(plan: UpscalePlan, runner: Runner) -> ScriptOutput:
    """Upscale, img2img every tile, blend them back (on the worker)."""
    req = plan.req
    source = flatten(runner.images[0], str(runner.options.get("img2img_background_color")))
    image = source if plan.upscaler.name == "None" else runner.upscale(plan.upscaler, source, plan.scale)
    grid = split_grid(image, req.width, req.height, plan.overlap)
    work = [tile.image for tile in grid.tiles()]
    seed, subseed = resolve_seed(req.seed), resolve_seed(req.subseed)
    extra = {"SD upscale overlap": plan.overlap, "SD upscale upscaler": plan.upscaler.name}
    first: Processed | None = None
    last: Processed | None = None
    results: list[Image.Image] = []
    starts: list[int] = []
    for n in range(req.n_iter):
        batch_seed = seed + n
        outputs: list[Image.Image] = []
        for index in range(plan.batch_count):
            batch = work[index * req.batch_size:(index + 1) * req.batch_size]
            call_req = req.model_copy(update={"seed": batch_seed, "subseed": subseed, "n_iter": 1})
            last = runner.process(ProcessCall(call_req, batch, runner.mask,
                                              overrides=ScriptOverrides(extra=dict(extra))))
            first = first or last
            batch_seed = last.seed + 1
            outputs += last.images
        for position, tile in enumerate(grid.tiles()):
            # A batch an interrupt left unmade leaves its tiles black, as in A1111.
            tile.image = outputs[position] if position < len(outputs) else Image.new("RGB", (req.width, req.height))
        results.append(combine_grid(grid))
        starts.append(seed + n)
    assert first is not None and last is not None  # n_iter and batch_count are at least 1
    saves = [ScriptSave(image, False, "", start, req.prompt, first.first_infotext, first.info)
             for image, start in zip(results, starts)] if runner.options.get("samples_save") else []
    return ScriptOutput(results, processed_info(last, seed, first.first_infotext), saves)
