"""Selectable scripts on txt2img and img2img (``script_name``/``script_args``): the X/Y/Z plot as one job here,
A1111's other built-in scripts in :mod:`sdapi.serving.builtin_scripts`.

The plot is checked when the request arrives (:func:`sdapi.scripts.xyz.plan.plan_plot`); every cell is then
generated on the worker as one job that counts ``cells * n_iter`` batches (twice that with a hires fix) for
``/progress``. An interrupt stops the cell being sampled (its partial image is kept, as A1111 keeps it) and leaves
the cells after it blank; skip ends the current cell's batch only.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from sdapi.engine.sampling.registry import find_sampler
from sdapi.errors import InvalidRequest
from sdapi.options import OptionsView
from sdapi.scripts.registry import find_script, script_infos, script_titles
from sdapi.scripts.xyz.args import plot_args
from sdapi.scripts.xyz.axes import IMG2IMG, TXT2IMG
from sdapi.scripts.xyz.cells import Generate, run_cells
from sdapi.scripts.xyz.plan import Axis, PlotContext, PlotPlan, plan_plot
from sdapi.scripts.xyz.response import plot_response
from sdapi.serving.base import Job, ServerState
from sdapi.serving.builtin_scripts import builtin_script_job
from sdapi.serving.generation import CheckedRequest, run_generation
from sdapi.serving.img2img import Img2ImgInputs, generate_img2img
from sdapi.serving.saving import image_saver
from sdapi.serving.txt2img import generate_txt2img


def script_job(state: ServerState, checked: CheckedRequest, mode: str, inputs: Img2ImgInputs | None = None) -> Job:
    """The job serving a request with a ``script_name`` (checked now, run later on the worker).

    Raises:
        Unprocessable: an unknown script (A1111's 422).
        InvalidRequest, RuntimeError, AssertionError: the script's own checks.
    """
    script = find_script(checked.req.script_name, mode)
    if script.key == "xyz":
        return _xyz_job(state, checked, mode, inputs)
    return builtin_script_job(state, checked, mode, inputs, script)


def scripts_list() -> dict[str, list[str]]:
    """``GET /sdapi/v1/scripts``: the scripts sdapi runs (A1111 v1.2.1 also lists "img2img alternative test")."""
    return {"txt2img": script_titles(TXT2IMG), "img2img": script_titles(IMG2IMG)}


def script_info(state: ServerState) -> list[dict[str, Any]]:
    """``GET /sdapi/v1/script-info`` (A1111 v1.4+): each script's arguments (SD upscale's choices are the
    upscalers present now)."""
    return script_infos([spec.name for spec in state.upscalers()])


def _xyz_job(state: ServerState, checked: CheckedRequest, mode: str, inputs: Img2ImgInputs | None) -> Job:
    req = checked.req
    context = PlotContext(mode, state.catalog, state.upscalers(), state.options.view(checked.overrides),
                          state.settings.limits)
    plan = plan_plot(req, plot_args(req.script_args), context)
    parameters = req.model_dump()
    if mode == IMG2IMG and not req.include_init_images:
        parameters.update(init_images=None, mask=None)
    generate = _cell_generator(state, mode, plan, inputs)
    passes = 2 if getattr(req, "enable_hr", False) else 1
    respond = functools.partial(_plot, state, req, mode, plan, generate, parameters)
    return functools.partial(run_generation, state, checked, len(plan.cells) * req.n_iter * passes, respond)


def _cell_generator(state: ServerState, mode: str, plan: PlotPlan, inputs: Img2ImgInputs | None) -> Generate:
    """How a cell's request is generated: as a plain txt2img/img2img request with the cell's options."""
    if mode == TXT2IMG:
        def generate(cell_req, options: OptionsView):
            return generate_txt2img(state, cell_req, find_sampler(cell_req.sampler_name or cell_req.sampler_index),
                                    options)
        return generate
    inpainting_axis = plan.axis_needing_inpainting()

    def generate(cell_req, options: OptionsView):
        if inpainting_axis is not None:
            require_inpainting(state, inpainting_axis, options)
        sampler = find_sampler(cell_req.sampler_name or cell_req.sampler_index)
        return generate_img2img(state, cell_req, sampler, inputs, options)
    return generate


def require_inpainting(state: ServerState, axis: Axis, options: OptionsView) -> None:
    """Refuse an axis that would change nothing: the cell's checkpoint must be an inpainting one.

    Raises:
        InvalidRequest: naming the axis and the checkpoint.
    """
    checkpoint = state.selected_checkpoint(options)
    if not state.engine.load(checkpoint.filename).inpainting:
        raise InvalidRequest(f"X/Y/Z plot {axis.letter} axis '{axis.type.label}' only changes inpainting "
                             f"checkpoints, and {checkpoint.title} is not one")


def _plot(state: ServerState, req, mode: str, plan: PlotPlan, generate: Generate, parameters: dict[str, Any],
          options: OptionsView) -> dict[str, Any]:
    """Generate every cell and answer with the grid (on the worker)."""
    interrupted: Callable[[], bool] = lambda: state.control.interrupted  # noqa: E731 - read at each cell
    failures: list[str] = []

    def saver_for(cell_options: OptionsView):
        return image_saver(state, cell_options, mode, failures)

    # As A1111's API: the cells' images are saved only with save_images; the plot's grids whenever grid_save is on.
    results = run_cells(plan, generate, options, state.control.job_timestamp, interrupted,
                        saver_for if req.save_images else None)
    grid_saver = saver_for(options)

    def save_grids(grids) -> None:
        grid_saver.save_plot_grids(grids, state.selected_checkpoint(options))

    return plot_response(req, plan, results, options, parameters, save_grids, failures)

