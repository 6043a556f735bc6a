"""The X/Y/Z plot as a job: checked when the request arrives, every cell generated on the worker as one job.

The job counts ``cells * n_iter`` batches (twice that with a hires fix) for ``/progress``. An interrupt stops the
cell being sampled (its partial image is kept, as A1111 keeps it) and leaves the cells after it blank; skip ends
the current cell's batch only.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from sdapi.engine.samplers import find_sampler
from sdapi.errors import InvalidRequest
from sdapi.scripts.xyz.args import plot_args
from sdapi.scripts.xyz.axes import IMG2IMG, TXT2IMG
from sdapi.scripts.xyz.cells import CellResult, Generate, run_cell
from sdapi.scripts.xyz.plan import Axis, PlotContext, PlotPlan, plan_plot
from sdapi.scripts.xyz.response import plot_response
from sdapi.translate import job_timestamp


def plot_context(state, mode: str) -> PlotContext:
    """What planning a plot needs from the server state."""
    upscalers = state.upscalers()
    return PlotContext(mode, state.catalog, upscalers, state.options, state.settings.max_pixels)


def txt2img_plot_job(state, req) -> Callable[[], dict[str, Any]]:
    """Check a txt2img plot now; return the job that generates it.

    Raises:
        InvalidRequest, RuntimeError, AssertionError: see :func:`sdapi.scripts.xyz.plan.plan_plot`.
    """
    plan = plan_plot(req, plot_args(req.script_args), plot_context(state, TXT2IMG))

    def generate(cell_req):
        return state.generate_txt2img(cell_req, find_sampler(cell_req.sampler_name or cell_req.sampler_index))

    return functools.partial(run_plot, state, req, plan, generate, req.model_dump())


def img2img_plot_job(state, req, images, mask) -> Callable[[], dict[str, Any]]:
    """Check an img2img plot now (its images already decoded); return the job that generates it."""
    from sdapi.img2img_service import (
        generate_img2img,  # the img2img service imports the serving layer
    )

    plan = plan_plot(req, plot_args(req.script_args), plot_context(state, IMG2IMG))
    inpainting_axis = plan.axis_needing_inpainting()

    def generate(cell_req):
        if inpainting_axis is not None:
            require_inpainting(state, inpainting_axis)
        sampler = find_sampler(cell_req.sampler_name or cell_req.sampler_index)
        return generate_img2img(state, cell_req, sampler, images, mask)

    parameters = req.model_dump()
    if not req.include_init_images:
        parameters.update(init_images=None, mask=None)
    return functools.partial(run_plot, state, req, plan, generate, parameters)


def require_inpainting(state, axis: Axis) -> None:
    """Refuse an axis that would change nothing: the cell's checkpoint (options as the cell set them) must be an
    inpainting one.

    Raises:
        InvalidRequest: naming the axis and the checkpoint.
    """
    checkpoint = state.selected_checkpoint()
    if not state.engine.is_inpainting(checkpoint.filename):
        raise InvalidRequest(f"X/Y/Z plot {axis.letter} axis '{axis.type.label}' only changes inpainting "
                             f"checkpoints, and {checkpoint.title} is not one")


def run_plot(state, req, plan: PlotPlan, generate: Generate, parameters: dict[str, Any]) -> dict[str, Any]:
    """Generate every cell and answer with the grid (on the worker)."""
    passes = 2 if getattr(req, "enable_hr", False) else 1
    state.control.begin(len(plan.cells) * req.n_iter * passes, job_timestamp())
    try:
        with state.overrides(req.override_settings, req.override_settings_restore_afterwards):
            results = run_cells(state, plan, generate)
            return plot_response(req, plan, results, state.options, parameters)
    finally:
        state.control.end()


def run_cells(state, plan: PlotPlan, generate: Generate) -> list[CellResult | None]:
    """Every cell's result in grid order, generated in ``plan.run_order``; ``None`` for cells an interrupt
    left unstarted (the first cell always starts: it is the answer's template)."""
    results: list[CellResult | None] = [None] * len(plan.cells)
    for count, index in enumerate(plan.run_order):
        if count and state.control.interrupted:
            break
        cell = plan.cells[index]
        results[index] = run_cell(state, cell, generate, grid_fields(plan, cell))
    return results


def grid_fields(plan: PlotPlan, cell) -> list[dict[str, Any]]:
    """The grid infotexts a cell heads: its sub-grid's when it is the sub-grid's first cell, and the main
    grid's too for the very first cell."""
    if cell.ix or cell.iy:
        return []
    fields = [plan.sub_grid_fields()]
    if cell.iz == 0:
        fields.append(plan.main_grid_fields())
    return fields
