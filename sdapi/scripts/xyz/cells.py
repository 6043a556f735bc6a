"""Running one X/Y/Z cell: its option overrides, generation as a plain request would run, and what the grid keeps.

Each cell is what A1111's ``process_images`` makes of the cell's copy of ``p``: its images (the plot keeps the
first), the ``info`` a single request would answer, and, for the first cell of a sub-grid, the grid infotexts
(that cell's infotext with the script's fields appended).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image

from sdapi.translate import image_grid, image_infotext, txt2img_response

# (request, options) → (ResolvedRequest, images, checkpoint): the serving layer's txt2img or img2img generation.
Generate = Callable[[Any, Any], tuple[Any, list, Any]]


@dataclass
class CellResult:
    """What a cell produced.

    Args:
        images: its images, each carrying its infotext (``parameters``); empty if interrupted before any.
        info: the ``info`` object a single request with the cell's values would answer.
        grid_infotexts: one infotext per requested set of grid fields.
    """

    images: list[Image.Image]
    info: dict[str, Any]
    grid_infotexts: list[str]

    @property
    def image(self) -> Image.Image | None:
        """The image the grid shows: the first one (the cell's own grid when a plain request would return one)."""
        return self.images[0] if self.images else None


# options → what saves a cell's images (``None``: nothing is saved).
SaverFor = Callable[[Any], Any]


def run_cell(cell, generate: Generate, grid_fields: list[dict[str, Any]], options, job_timestamp: str,
             saver_for: SaverFor | None = None) -> CellResult:
    """Generate one cell with its overrides on top of the job's options.

    Args:
        cell: a :class:`sdapi.scripts.xyz.plan.Cell`.
        generate: how its request is generated.
        grid_fields: infotext fields of the grids this cell's infotext heads (empty for most cells).
        options: the job's options (an ``OptionsView``); the cell's overrides go on a copy.
        job_timestamp: the running job's timestamp (``info``).
        saver_for: the saver of the cell's images with its options; A1111 saves them (and a batch's grid) like a
            plain request's when the request has ``save_images``.
    """
    options = options.with_overrides(cell.overrides)
    resolved, images, checkpoint = generate(cell.request, options)
    body = txt2img_response(cell.request.model_copy(update={"send_images": False}), resolved, images,
                            checkpoint, options, job_timestamp, None,
                            saver_for(options) if saver_for is not None else None)
    info = json.loads(body["info"])
    grid_texts = [grid_infotext(cell.request, resolved, checkpoint, options, fields) for fields in grid_fields]
    if info["index_of_first_image"] == 1:
        # A saved batch is returned behind its own grid, and A1111's plot keeps "the first image": that grid.
        rows = int(options.get("n_rows"))
        images = [image_grid(images, resolved.params.batch_size if rows == 0 else rows)] + images
    return CellResult(images, info, grid_texts)


def run_cells(plan, generate: Generate, options, job_timestamp: str,
              interrupted: Callable[[], bool], saver_for: SaverFor | None = None) -> list[CellResult | None]:
    """Every cell's result in grid order, generated in ``plan.run_order``; ``None`` for cells an interrupt
    left unstarted (the first cell always starts: it is the answer's template). ``saver_for``: as for
    :func:`run_cell`."""
    results: list[CellResult | None] = [None] * len(plan.cells)
    for count, index in enumerate(plan.run_order):
        if count and interrupted():
            break
        cell = plan.cells[index]
        results[index] = run_cell(cell, generate, grid_fields(plan, cell), options, job_timestamp, saver_for)
    return results


def grid_fields(plan, cell) -> list[dict[str, Any]]:
    """The grid infotexts a cell heads: its sub-grid's when it is the sub-grid's first cell, and the main
    grid's too for the very first cell."""
    if cell.ix or cell.iy:
        return []
    fields = [plan.sub_grid_fields()]
    if cell.iz == 0:
        fields.append(plan.main_grid_fields())
    return fields


def grid_infotext(req, resolved, checkpoint, options, fields: dict[str, Any]) -> str:
    """The cell's first infotext with ``fields`` appended after its own extra parameters (A1111's grid text)."""
    params = dataclasses.replace(resolved.params, extra={**resolved.params.extra, **fields})
    return image_infotext(req, dataclasses.replace(resolved, params=params), 0, checkpoint, options)
