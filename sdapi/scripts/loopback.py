"""A1111 v1.2.1's "Loopback" (img2img): each result becomes the next loop's init image.

``n_iter`` batches of ``loops`` single-image img2img calls. Loop 0 runs at the request's denoising strength ``d0``;
after loop ``i`` the strength becomes ``d0 + (final - d0) * curve((i + 1) / (loops - 1))`` with curve Linear
``t``, Aggressive ``sin(t*pi/2)`` or Lazy ``1 - cos(t*pi/2)`` (so the last loop runs at ``final``). The seed is
fixed once and moves on by one after every call; from the second loop the masked content is "original". With one
batch every loop's image is returned, with several the last image of each; when more than one image is kept and
``return_grid`` is on, a one-row grid of them comes first. An interrupt stops at once; a skip ends the batch.
``info`` is A1111's ``Processed(p, images, first seed, first infotext)`` with ``p``'s final strength (the curve
evaluated one loop past the end, as A1111 leaves it).

``append_interrogation`` (CLIP, DeepBooru) is refused: sdapi has no CLIP interrogator or DeepBooru model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from sdapi.bounds import check_finite
from sdapi.errors import InvalidRequest
from sdapi.scripts.args import FLOAT, INT, TEXT, ArgSpec
from sdapi.scripts.processing import ProcessCall, Processed, Runner, ScriptOutput, ScriptSave, processed_info
from sdapi.seeds import resolve_seed
from sdapi.settings import Limits
from sdapi.translate import ScriptOverrides, image_grid

TITLE = "Loopback"
CURVES = ("Aggressive", "Linear", "Lazy")
INTERROGATORS = ("None", "CLIP", "DeepBooru")
ARGS = (
    ArgSpec("loops", "Loops", INT, 4, minimum=1, maximum=32, step=1),
    ArgSpec("final_denoising_strength", "Final denoising strength", FLOAT, 0.5, minimum=0, maximum=1, step=0.01),
    ArgSpec("denoising_curve", "Denoising strength curve", TEXT, "Linear", choices=CURVES),
    ArgSpec("append_interrogation", "Append interrogated prompt at each iteration", TEXT, "None",
            choices=INTERROGATORS),
)
FILL_ORIGINAL = 1


@dataclass
class LoopPlan:
    """A loopback request, checked."""

    req: Any
    loops: int
    final: float
    curve: str

    @property
    def job_count(self) -> int:
        return self.loops * self.req.n_iter


def denoising_strength(loop: int, loops: int, initial: float, final: float, curve: str) -> float:
    """The strength after ``loop`` loops (A1111's ``calculate_denoising_strength``; any unknown curve is Linear)."""
    if loops == 1:
        return initial
    progress = loop / (loops - 1)
    if curve == "Aggressive":
        shaped = math.sin(progress * math.pi * 0.5)
    elif curve == "Lazy":
        shaped = 1 - math.cos(progress * math.pi * 0.5)
    else:
        shaped = progress
    return initial + (final - initial) * shaped


def plan_loopback(req, args: dict[str, Any], limits: Limits) -> LoopPlan:
    """Check the arguments and bound the number of calls before anything runs.

    Raises:
        InvalidRequest: no loops, more images than the server's bounds, an interrogator sdapi lacks.
    """
    loops, final = args["loops"], args["final_denoising_strength"]
    check_finite("script_args final_denoising_strength", final)
    if loops < 1:
        raise InvalidRequest(f"script_args loops must be at least 1, got {loops}")
    if loops * req.n_iter > limits.max_images:
        raise InvalidRequest(f"Loopback of {loops} loops, {req.n_iter} times, makes {loops * req.n_iter} images, "
                             f"more than this server's limit of {limits.max_images}")
    if args["append_interrogation"] != "None":
        raise InvalidRequest(f"script_args append_interrogation {args['append_interrogation']!r} is not available "
                             "on this server (no CLIP interrogator or DeepBooru); use \"None\"")
    return LoopPlan(req, loops, final, args["denoising_curve"])


def run_loopback(plan: LoopPlan, runner: Runner) -> ScriptOutput:
    """Run every loop of every batch (on the worker)."""
    req = plan.req
    initial = req.denoising_strength
    extra = {"Final denoising strength": plan.final, "Denoising curve": plan.curve}
    seed, subseed = resolve_seed(req.seed), resolve_seed(req.subseed)
    strength, fill = initial, req.inpainting_fill
    first: Processed | None = None
    last: Processed | None = None
    history: list[Image.Image] = []
    for _ in range(req.n_iter):
        images, strength, fill = list(runner.images), initial, req.inpainting_fill
        kept = None
        for loop in range(plan.loops):
            call_req = req.model_copy(update={"batch_size": 1, "n_iter": 1, "seed": seed, "subseed": subseed,
                                              "denoising_strength": strength, "inpainting_fill": fill})
            processed = runner.process(ProcessCall(call_req, images, runner.mask,
                                                   overrides=ScriptOverrides(extra=dict(extra))))
            last = processed
            if runner.interrupted():
                break
            first = first or processed
            seed = processed.seed + 1
            strength = denoising_strength(loop + 1, plan.loops, initial, plan.final, plan.curve)
            if runner.skipped() or not processed.images:
                break
            kept = processed.images[0]
            images, fill = [kept], FILL_ORIGINAL
            if req.n_iter == 1:
                history.append(kept)
        if req.n_iter > 1 and not runner.skipped() and not runner.interrupted() and kept is not None:
            history.append(kept)
        if runner.interrupted():
            break
    grids = [image_grid(history, rows=1)] if len(history) > 1 and runner.options.get("return_grid") else []
    assert last is not None  # loops and n_iter are at least 1
    info = processed_info(last, first.seed if first else None, first.first_infotext if first else None,
                          denoising_strength=strength, batch_size=1)
    saves = [ScriptSave(grid, True, "grid", info["seed"], req.prompt, info["infotexts"][0], last.info,
                        short_filename=not runner.options.get("grid_extended_filename"))
             for grid in grids] if runner.options.get("grid_save") else []
    return ScriptOutput(grids + history, info, saves)
