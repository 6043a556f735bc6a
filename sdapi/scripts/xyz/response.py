"""The X/Y/Z plot's answer: grids first, then (if asked) sub-grids and cells, with A1111 v1.2.1's ``info``.

A1111 answers with its first cell's ``Processed`` as a template, lists replaced:

* ``images``: the main grid, the sub-grids if ``include_sub_grids``, the cells if ``include_lone_images``;
  grids carry no ``parameters`` chunk, cells their own;
* ``infotexts``: the main grid's, the sub-grids' if ``include_sub_grids``, then every cell's (even when the cell
  images are not returned);
* ``all_prompts`` / ``all_seeds``: every cell's prompt (after Prompt S/R, before styles) and first seed, preceded
  by each sub-grid's first cell's when ``include_sub_grids``; ``prompt`` is the first of them;
* ``index_of_first_image``: 1;
* everything else is the first cell's (``all_negative_prompts``, ``all_subseeds``, ``steps``, ...).

Cells an interrupt left unstarted are blank in the grid and ``null`` in the lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image

from sdapi.images import encode_image
from sdapi.options import Options
from sdapi.scripts.xyz.cells import CellResult
from sdapi.scripts.xyz.grid import plot_grids
from sdapi.scripts.xyz.plan import PlotPlan


def cell_images(plan: PlotPlan, results: list[CellResult | None]) -> list[Image.Image]:
    """Each cell's image in grid order; cells without one are blank, shaped like the first cell's."""
    first = results[0]
    template = first.image if first is not None else None
    if template is not None:
        mode, size = template.mode, template.size
    else:
        mode, size = "P", (plan.cells[0].request.width, plan.cells[0].request.height)
    return [result.image if result is not None and result.image is not None else Image.new(mode, size)
            for result in results]


def _per_cell(plan: PlotPlan, results: list[CellResult | None], value) -> list[Any]:
    return [value(cell, result) if result is not None and result.images else None
            for cell, result in zip(plan.cells, results)]


def _grid_text(result: CellResult | None, which: int) -> str | None:
    if result is None or len(result.grid_infotexts) <= which:
        return None
    return result.grid_infotexts[which]


def plot_info(plan: PlotPlan, results: list[CellResult | None]) -> dict[str, Any]:
    """The ``info`` object (see the module docstring)."""
    prompts = _per_cell(plan, results, lambda cell, result: cell.request.prompt or "")
    seeds = _per_cell(plan, results, lambda cell, result: result.info["seed"])
    texts = _per_cell(plan, results, lambda cell, result: result.info["infotexts"][0])
    first_of_grid = [iz * plan.cells_per_grid for iz in range(len(plan.z.values))]
    main_text = _grid_text(results[0], 1)
    sub_texts = [_grid_text(results[i], 0) for i in first_of_grid]
    if plan.args.include_sub_grids:
        prompts = [prompts[i] for i in first_of_grid] + prompts
        seeds = [seeds[i] for i in first_of_grid] + seeds
        texts = sub_texts + texts
    info = dict(results[0].info)  # the first cell always runs first: A1111's template
    info.update(prompt=prompts[0], all_prompts=prompts, all_seeds=seeds, infotexts=[main_text] + texts,
                index_of_first_image=1)
    return info


@dataclass
class SavedGrid:
    """A grid A1111's plot saves (``xyz_grid-NNNN``) and what its file name reads: the first cell's prompt and
    seed of that grid, the grid's infotext, and the answer's template (``template``: the first cell's ``info``,
    A1111's ``Processed``)."""

    image: Image.Image
    infotext: str | None
    prompt: str
    seed: Any
    template: dict[str, Any]


def grids_to_save(plan: PlotPlan, results: list[CellResult | None], main: Image.Image,
                  sub_grids: list[Image.Image]) -> list[SavedGrid]:
    """With ``grid_save`` on, A1111 saves the main grid and, when there are several Z values, each sub-grid
    (whether or not they are returned)."""
    first_of_grid = [iz * plan.cells_per_grid for iz in range(len(plan.z.values))]

    def first_cell(i: int) -> tuple[str, Any]:
        result = results[i]
        seed = result.info["seed"] if result is not None and result.images else None
        return plan.cells[i].request.prompt or "", seed

    template = results[0].info
    saved = [SavedGrid(main, _grid_text(results[0], 1), *first_cell(0), template)]
    if len(sub_grids) > 1:
        saved += [SavedGrid(grid, _grid_text(results[i], 0), *first_cell(i), template)
                  for grid, i in zip(sub_grids, first_of_grid)]
    return saved


def plot_images(plan: PlotPlan, results: list[CellResult | None], font_file: str = "",
                save_grids: Callable[[list[SavedGrid]], Any] | None = None) -> list[Image.Image]:
    """The images to return, in order (see the module docstring); ``save_grids`` gets the grids to save."""
    cells = cell_images(plan, results)
    main, sub_grids = plot_grids(cells, plan.x.labels, plan.y.labels, plan.z.labels, plan.args.draw_legend,
                                 plan.args.margin_size, font_file)
    if save_grids is not None:
        save_grids(grids_to_save(plan, results, main, sub_grids))
    images = [main]
    if plan.args.include_sub_grids:
        images += sub_grids
    if plan.args.include_lone_images:
        images += cells
    return images


def plot_response(req, plan: PlotPlan, results: list[CellResult | None], options: Options,
                  parameters: dict[str, Any], save_grids: Callable[[list[SavedGrid]], Any] | None = None,
                  warnings: list[str] | None = None) -> dict[str, Any]:
    """``TextToImageResponse`` / ``ImageToImageResponse`` of a finished plot.

    Args:
        req: the request as the client sent it.
        parameters: its echo (``response.parameters``).
        save_grids: saves the plot's grids (``grid_save``); called before the answer is built.
        warnings: images not saved (sdapi's ``info["warnings"]``), read after ``save_grids`` ran.
    """
    images = plot_images(plan, results, str(options.get("font") or ""), save_grids)
    fmt, quality, pnginfo = options.get("samples_format"), options.get("jpeg_quality"), options.get("enable_pnginfo")
    encoded = [encode_image(image, fmt, quality, pnginfo) for image in images] if req.send_images else []
    info = plot_info(plan, results)
    info.pop("warnings", None)  # a cell's own; the plot's are listed below
    if warnings:
        info["warnings"] = list(warnings)
    return {"images": encoded, "parameters": parameters, "info": json.dumps(info)}
