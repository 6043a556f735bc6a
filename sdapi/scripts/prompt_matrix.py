"""A1111 v1.2.1's "Prompt matrix" (txt2img and img2img): every combination of a prompt's ``|``-separated parts.

The first part is always there; combination ``k`` adds the parts whose bit is set in ``k`` (stripped of spaces and
commas), after the first part or, with ``put_at_start``, before it, joined by ``", "`` or ``" "``. The matrix
applies to the prompt or (``prompt_type`` "negative") the negative prompt. All ``2 ** (parts - 1)`` images run as one
``process_images`` call with list-valued prompts: ``batch_size`` at a time, one seed for all of them (``seed + k``
with ``different_seeds``). The answer is the annotated grid, then the images; ``info`` is that call's, with the
first infotext repeated for the grid and ``index_of_first_image`` 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from sdapi.errors import InvalidRequest
from sdapi.scripts.args import BOOL, INT, TEXT, ArgSpec
from sdapi.scripts.processing import ProcessCall, Processed, Runner, ScriptOutput, ScriptSave
from sdapi.scripts.xyz.grid import Annotation, annotate_grid
from sdapi.seeds import resolve_seed
from sdapi.settings import Limits
from sdapi.translate import ScriptOverrides, image_grid

TITLE = "Prompt matrix"
PROMPT_TYPES = ("positive", "negative")
DELIMITERS = {"comma": ", ", "space": " "}
ARGS = (
    ArgSpec("put_at_start", "Put variable parts at start of prompt", BOOL, False),
    ArgSpec("different_seeds", "Use different seed for each picture", BOOL, False),
    ArgSpec("prompt_type", "Select prompt", TEXT, "positive", choices=PROMPT_TYPES),
    ArgSpec("variations_delimiter", "Select joining char", TEXT, "comma", choices=tuple(DELIMITERS)),
    ArgSpec("margin_size", "Grid margins (px)", INT, 0, minimum=0, maximum=500, step=2),
)


@dataclass
class MatrixPlan:
    """A prompt matrix, checked.

    Args:
        req: the request.
        parts: the prompt split at ``|`` (as written: the legend shows them so).
        prompts: one per image, in combination order.
        negative: the matrix is of the negative prompt.
        different_seeds: image ``k`` gets ``seed + k``.
        margin: pixels between grid cells.
    """

    req: Any
    parts: list[str]
    prompts: list[str]
    negative: bool
    different_seeds: bool
    margin: int

    @property
    def job_count(self) -> int:
        """A1111's ``p.n_iter`` batches (twice with a hires fix)."""
        passes = 2 if getattr(self.req, "enable_hr", False) else 1
        return math.ceil(len(self.prompts) / self.req.batch_size) * passes


def combinations(parts: list[str], put_at_start: bool, delimiter: str) -> list[str]:
    """Every prompt of the matrix, in A1111's order (bit ``n`` of the index selects part ``n + 1``)."""
    prompts = []
    for number in range(2 ** (len(parts) - 1)):
        chosen = [text.strip().strip(",") for n, text in enumerate(parts[1:]) if number & (1 << n)]
        prompts.append(delimiter.join(chosen + [parts[0]] if put_at_start else [parts[0]] + chosen))
    return prompts


def plan_prompt_matrix(req, args: dict[str, Any], limits: Limits) -> MatrixPlan:
    """Check the arguments and bound the number of images before anything runs.

    Raises:
        ValueError: A1111's errors for an unknown ``prompt_type`` or ``variations_delimiter`` (500).
        InvalidRequest: more combinations than the server's image limit, a negative margin.
    """
    if args["prompt_type"] not in PROMPT_TYPES:
        raise ValueError(f"Unknown prompt type {args['prompt_type']}")
    if args["variations_delimiter"] not in DELIMITERS:
        raise ValueError(f"Unknown variations delimiter {args['variations_delimiter']}")
    if args["margin_size"] < 0:
        raise InvalidRequest(f"script_args margin_size must be 0 or more, got {args['margin_size']}")
    negative = args["prompt_type"] == "negative"
    parts = ((req.negative_prompt if negative else req.prompt) or "").split("|")
    # 2 ** (parts - 1) images: the exponent is checked before any power is taken.
    if len(parts) - 1 > math.log2(limits.max_images):
        raise InvalidRequest(f"Prompt matrix of {len(parts)} parts would make 2^{len(parts) - 1} images, more than "
                             f"this server's limit of {limits.max_images}")
    prompts = combinations(parts, args["put_at_start"], DELIMITERS[args["variations_delimiter"]])
    return MatrixPlan(req, parts, prompts, negative, args["different_seeds"], args["margin_size"])


def matrix_labels(parts: list[str]) -> tuple[list[list[Annotation]], list[list[Annotation]]]:
    """Column and row legends (A1111's ``draw_prompt_matrix``): the first half of the variable parts across, the
    rest down, each cell's parts active where its combination has them."""
    variable = parts[1:]
    boundary = math.ceil(len(variable) / 2)
    across, down = variable[:boundary], variable[boundary:]

    def labels(texts: list[str]) -> list[list[Annotation]]:
        return [[Annotation(text, bool(position & (1 << i))) for i, text in enumerate(texts)]
                for position in range(1 << len(texts))]

    return labels(across), labels(down)


def matrix_grid(images: list[Image.Image], parts: list[str], count: int, margin: int, font_file: str
                ) -> Image.Image:
    """The annotated grid: ``2 ** ((parts - 1) // 2)`` rows; cells an interrupt left unmade are black."""
    width, height = images[0].size
    cells = images + [Image.new("RGB", (width, height))] * (count - len(images))
    rows = min(1 << ((len(parts) - 1) // 2), len(cells))
    columns, row_labels = matrix_labels(parts)
    return annotate_grid(image_grid(cells, rows), width, height, columns, row_labels, margin, font_file)


def run_prompt_matrix(plan: MatrixPlan, runner: Runner) -> ScriptOutput:
    """Generate every combination, ``batch_size`` at a time, then the grid (on the worker)."""
    req = plan.req
    seed, subseed = resolve_seed(req.seed), resolve_seed(req.subseed)
    size = req.batch_size
    calls: list[Processed] = []
    for start in range(0, len(plan.prompts), size):
        if calls and runner.interrupted():
            break
        chunk = plan.prompts[start:start + size]
        seeds = [seed + (start + i if plan.different_seeds else 0) for i in range(len(chunk))]
        overrides = ScriptOverrides(prompts=None if plan.negative else chunk,
                                    negative_prompts=chunk if plan.negative else None, seeds=seeds)
        call_req = req.model_copy(update={"batch_size": len(chunk), "n_iter": 1, "seed": seeds[0],
                                          "subseed": subseed + start})
        calls.append(runner.process(ProcessCall(call_req, runner.images, runner.mask, overrides=overrides)))
    images = [image for call in calls for image in call.images]
    info = joined_info(calls, req.batch_size)
    saves = []
    if images:
        grid = matrix_grid(images, plan.parts, len(plan.prompts), plan.margin, str(runner.options.get("font") or ""))
        images = [grid] + images
        info.update(infotexts=info["infotexts"][:1] + info["infotexts"], index_of_first_image=1)
        if runner.options.get("grid_save"):  # A1111 saves it with no infotext, under the request's prompt
            saves.append(ScriptSave(grid, True, "prompt_matrix", info["seed"], req.prompt or "", None, calls[0].info))
    return ScriptOutput(images, info, saves)


def joined_info(calls: list[Processed], batch_size: int) -> dict[str, Any]:
    """The ``info`` of one ``process_images`` call made of the batches ``calls``."""
    info = dict(calls[0].info)
    for key in ("all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds", "infotexts"):
        info[key] = [item for call in calls for item in call.info[key]]
    info.update(prompt=info["all_prompts"][0], negative_prompt=info["all_negative_prompts"][0],
                batch_size=batch_size)
    return info
