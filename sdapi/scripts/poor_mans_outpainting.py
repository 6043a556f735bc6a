"""A1111 v1.2.1's "Poor man's outpainting" (img2img): grow the canvas, then inpaint the tiles that touch the new
area.

The init image is pasted on a black canvas (:func:`sdapi.scripts.outpainting.expansion`). Two masks cover the new
area: the image mask stops ``2 * mask_blur`` pixels short of the original on each grown side (and is blurred by
``2 * mask_blur`` as the request's mask would be), the latent mask ``mask_blur // 2`` short. Canvas and masks are
cut into tiles of the request's size overlapping by ``pixels``; each tile not wholly inside the original is one
single-image inpainting call with ``inpainting_fill`` (the masked content) and "whole picture" inpainting. The
first call uses the request's seed, each next one the previous seed + 1. The tiles are blended back into one
image (without an infotext, as A1111's), the only image returned; ``n_iter`` and ``batch_size`` are not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from sdapi.errors import InvalidRequest
from sdapi.scripts.args import DIRECTIONS as DIRECTIONS_KIND
from sdapi.scripts.args import INDEX, INT, ArgSpec
from sdapi.scripts.outpainting import DIRECTIONS, Expansion, check_expansion, expansion
from sdapi.scripts.processing import ProcessCall, Processed, Runner, ScriptOutput, ScriptSave, processed_info
from sdapi.scripts.tiles import Tile, TileGrid, combine_grid, split_grid, tile_counts
from sdapi.settings import Limits

TITLE = "Poor man's outpainting"
FILLS = ("fill", "original", "latent noise", "latent nothing")
ARGS = (
    ArgSpec("pixels", "Pixels to expand", INT, 128, minimum=8, maximum=256, step=8),
    ArgSpec("mask_blur", "Mask blur", INT, 4, minimum=0, maximum=64, step=1),
    ArgSpec("inpainting_fill", "Masked content", INDEX, "fill", choices=FILLS),
    ArgSpec("direction", "Outpainting direction", DIRECTIONS_KIND, list(DIRECTIONS), choices=DIRECTIONS),
)


@dataclass
class PoorPlan:
    """A poor man's outpainting request, checked.

    Args:
        req: the request.
        pixels, mask_blur, fill: the arguments (``fill`` as an index).
        grown: the canvas.
        work: how many tiles are inpainted.
    """

    req: Any
    pixels: int
    mask_blur: int
    fill: int
    grown: Expansion
    work: int

    @property
    def job_count(self) -> int:
        return self.work


def side_mask(grown: Expansion, inset: int) -> Image.Image:
    """White (repaint) everywhere but the original image, shrunk by ``inset`` on each grown side."""
    mask = Image.new("L", (grown.width, grown.height), "white")
    ImageDraw.Draw(mask).rectangle((
        grown.left + (inset if grown.left > 0 else 0),
        grown.up + (inset if grown.up > 0 else 0),
        mask.width - grown.right - (inset if grown.right > 0 else 0),
        mask.height - grown.down - (inset if grown.down > 0 else 0),
    ), fill="black")
    return mask


def inside_original(x: int, y: int, width: int, height: int, grown: Expansion) -> bool:
    """Whether a tile lies wholly on the original image (nothing to outpaint there)."""
    return (x >= grown.left and x + width <= grown.width - grown.right and y >= grown.up
            and y + height <= grown.height - grown.down)


def tiles_to_paint(grid: TileGrid, grown: Expansion) -> list[Tile]:
    """The tiles that touch the new area, row by row."""
    return [tile for row in grid.rows for tile in row.tiles
            if not inside_original(tile.x, row.y, grid.tile_w, grid.tile_h, grown)]


def plan_poor_mans(req, args: dict[str, Any], image: Image.Image, limits: Limits) -> PoorPlan:
    """Check the arguments and bound the tiles before anything runs.

    Raises:
        InvalidRequest: an overlap as large as a tile, a masked content that is not one, a canvas or tile count
            beyond the server's bounds.
    """
    pixels, mask_blur, fill = args["pixels"], args["mask_blur"], args["inpainting_fill"]
    grown = expansion(image.width, image.height, pixels, args["direction"])
    check_expansion(pixels, mask_blur, grown, limits)
    if not 0 <= fill < len(FILLS):
        raise InvalidRequest(f"script_args inpainting_fill must be 0-{len(FILLS) - 1} ({', '.join(FILLS)}), got {fill}")
    if pixels >= min(req.width, req.height):
        raise InvalidRequest(f"script_args pixels {pixels} is the tile overlap here and must be smaller than the "
                             f"tile size {req.width}x{req.height}")
    columns, rows = tile_counts(grown.width, grown.height, req.width, req.height, pixels)
    if columns < 1 or rows < 1:
        raise InvalidRequest(f"Poor man's outpainting: the {grown.width}x{grown.height} canvas is smaller than the "
                             f"tile overlap {pixels}")
    if columns * rows > limits.max_images:
        raise InvalidRequest(f"Poor man's outpainting would inpaint up to {columns * rows} tiles, more than this "
                             f"server's limit of {limits.max_images} images; raise width/height")
    grid = split_grid(Image.new("L", (grown.width, grown.height)), req.width, req.height, pixels)
    work = len(tiles_to_paint(grid, grown))
    if work == 0:  # A1111 would answer the canvas with an info of nothing
        raise InvalidRequest("Poor man's outpainting has nothing to paint: no tile touches a new area (choose a "
                             "direction)")
    return PoorPlan(req, pixels, mask_blur, fill, grown, work)


def run_poor_mans(plan: PoorPlan, runner: Runner) -> ScriptOutput:
    """Inpaint every tile on the new area and blend them back (on the worker)."""
    req, grown = plan.req, plan.grown
    canvas = Image.new("RGB", (grown.width, grown.height))
    canvas.paste(runner.images[0].convert("RGB"), (grown.left, grown.up))
    grids = [split_grid(image, req.width, req.height, plan.pixels)
             for image in (canvas, side_mask(grown, plan.mask_blur * 2), side_mask(grown, plan.mask_blur // 2))]
    work = [tiles_to_paint(grid, grown) for grid in grids]
    base = req.model_copy(update={"mask_blur": plan.mask_blur * 2, "inpainting_fill": plan.fill,
                                  "inpaint_full_res": False, "n_iter": 1, "batch_size": 1})
    seed = req.seed
    first: Processed | None = None
    last: Processed | None = None
    outputs: list[Image.Image] = []
    for tile, mask, latent_mask in zip(*work):
        last = runner.process(ProcessCall(base.model_copy(update={"seed": seed}), [tile.image], mask.image,
                                          latent_mask.image))
        first = first or last
        seed = last.seed + 1
        outputs += last.images
    for index, tile in enumerate(work[0]):
        tile.image = outputs[index] if index < len(outputs) else Image.new("RGB", (req.width, req.height))
    assert first is not None and last is not None  # the plan has at least one tile to paint
    combined = combine_grid(grids[0])
    saves = ([ScriptSave(combined, False, "", first.seed, req.prompt, first.first_infotext, first.info)]
             if runner.options.get("samples_save") else [])
    return ScriptOutput([combined], processed_info(last, first.seed, first.first_infotext), saves)
