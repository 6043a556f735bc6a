"""A1111 v1.2.1's "Prompts from file or textbox" (txt2img and img2img): one request per non-empty line.

A line without ``--`` is a prompt. A line with ``--`` is read as options (shell quoting): ``--prompt`` and
``--negative_prompt`` take every word up to the next ``--option``; the other options take one value each, of the
type in v1.2.1's ``prompt_tags`` table (:data:`PROMPT_TAGS`). A line A1111 cannot read that way (an unknown
option such as ``--sd_model``, a missing value, a number that is not one, unbalanced quotes) is, as in A1111, used
whole as the prompt; sdapi also says so in ``info["warnings"]``. An unknown ``--sampler_name`` becomes A1111's
first sampler (Euler a), as v1.2.1's ``create_sampler(None)`` does. Options that only concern saving files
(``outpath_*``, ``do_not_save_*``) and ``prompt_for_display``/``sampler_index`` (which v1.2.1 ignores once ``p``
exists) change nothing.

Seeds: with ``checkbox_iterate`` or ``checkbox_iterate_batch`` a seed of -1 is fixed once for every line;
``checkbox_iterate`` then moves it on by ``batch_size * n_iter`` after each line. The answer is every line's
images in order, with ``all_prompts`` and ``infotexts`` concatenated; the rest of ``info`` describes the request
itself (``seed`` the final seed, as A1111's ``Processed(p, images, p.seed, "")``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from sdapi.bounds import check_generation
from sdapi.engine.sampling.registry import SAMPLERS
from sdapi.errors import InvalidRequest
from sdapi.scripts.args import BOOL, TEXT, ArgSpec
from sdapi.scripts.processing import ProcessCall, Runner, ScriptOutput
from sdapi.seeds import resolve_seed
from sdapi.settings import Limits

TITLE = "Prompts from file or textbox"
ARGS = (
    ArgSpec("checkbox_iterate", "Iterate seed every line", BOOL, False),
    ArgSpec("checkbox_iterate_batch", "Use same random seed for all lines", BOOL, False),
    ArgSpec("prompt_txt", "List of prompt inputs", TEXT, ""),
)


def _boolean(text: str) -> bool:
    return text == "true"  # v1.2.1: anything else, "True" included, is false


# v1.2.1's prompt_tags: option → how its value is read (None: listed but refused, as A1111's `assert func`).
PROMPT_TAGS: dict[str, Callable[[str], Any] | None] = {
    "sd_model": None, "outpath_samples": str, "outpath_grids": str, "prompt_for_display": str, "prompt": str,
    "negative_prompt": str, "styles": str, "seed": int, "subseed_strength": float, "subseed": int,
    "seed_resize_from_h": int, "seed_resize_from_w": int, "sampler_index": int, "sampler_name": str,
    "batch_size": int, "n_iter": int, "steps": int, "cfg_scale": float, "width": int, "height": int,
    "restore_faces": _boolean, "tiling": _boolean, "do_not_save_samples": _boolean, "do_not_save_grid": _boolean,
}
# Options a line may set that have no effect on a request here.
NO_EFFECT = {"outpath_samples", "outpath_grids", "prompt_for_display", "sampler_index", "do_not_save_samples",
             "do_not_save_grid"}
TEXT_OPTIONS = ("prompt", "negative_prompt")
# A1111's samplers_map: display names and aliases, in lower case.
SAMPLER_NAMES = {name.lower(): spec.name for spec in SAMPLERS for name in (spec.name, *spec.aliases)}


@dataclass
class Line:
    """One line: the request fields it sets, and why it was read as a plain prompt if it was."""

    fields: dict[str, Any]
    warning: str | None = None


@dataclass
class LinesPlan:
    """Every line's request, checked.

    Args:
        req: the request.
        requests: per line, the request with the line's fields.
        own_seeds: per line, whether it sets ``--seed`` (else it runs with the script's current seed).
        iterate, iterate_batch: the two checkboxes.
        warnings: lines read as plain prompts, and unknown samplers.
    """

    req: Any
    requests: list[Any]
    own_seeds: list[bool]
    iterate: bool
    iterate_batch: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def job_count(self) -> int:
        """A1111's: every line's ``n_iter`` (twice with a hires fix)."""
        return sum(r.n_iter * (2 if getattr(r, "enable_hr", False) else 1) for r in self.requests)


def parse_options(line: str) -> dict[str, Any]:
    """A line's ``--option value`` pairs (A1111's ``cmdargs``).

    Raises:
        ValueError: anything A1111's parser would fail on (the line is then a plain prompt).
    """
    words = shlex.split(line)
    found: dict[str, Any] = {}
    pos = 0
    while pos < len(words):
        word = words[pos]
        if not word.startswith("--"):
            raise ValueError(f'must start with "--": {word}')
        if pos + 1 >= len(words):
            raise ValueError(f"missing argument for command line option {word}")
        tag = word[2:]
        if tag in TEXT_OPTIONS:
            pos += 1
            text = [words[pos]]
            pos += 1
            while pos < len(words) and not words[pos].startswith("--"):
                text.append(words[pos])
                pos += 1
            found[tag] = " ".join(text)
            continue
        read = PROMPT_TAGS.get(tag)
        if read is None:
            raise ValueError(f"unknown commandline option: {word}")
        value = words[pos + 1]
        found[tag] = SAMPLER_NAMES.get(value.lower()) if tag == "sampler_name" else read(value)
        pos += 2
    return found


def read_line(line: str) -> Line:
    """One non-empty line as request fields (a plain prompt when it has no ``--`` or cannot be read)."""
    if "--" not in line:
        return Line({"prompt": line})
    try:
        options = parse_options(line)
    except ValueError as exc:
        return Line({"prompt": line}, f"prompt_txt line {line!r} was used as the prompt: {exc}")
    return Line({key: value for key, value in options.items() if key not in NO_EFFECT})


def line_request(req, line: Line, warnings: list[str]):
    """The request a line makes: the script's request with the line's fields."""
    fields = dict(line.fields)
    if "sampler_name" in fields:
        if fields["sampler_name"] is None:
            warnings.append(f"prompt_txt: unknown sampler_name, {SAMPLERS[0].name} used (as A1111)")
            fields["sampler_name"] = SAMPLERS[0].name
        fields["sampler_index"] = fields["sampler_name"]
    if "styles" in fields:
        fields["styles"] = [fields["styles"]]  # one style name (A1111 would iterate over its characters)
    return req.model_copy(update=fields)


def plan_prompts_from_file(req, args: dict[str, Any], limits: Limits) -> LinesPlan:
    """Read every line and check every line's request before anything runs.

    Raises:
        InvalidRequest: naming the line whose request cannot work, or more lines or images than the server's
            bounds.
    """
    lines = [text.strip() for text in args["prompt_txt"].splitlines()]
    lines = [text for text in lines if text]
    if len(lines) > limits.max_images:
        raise InvalidRequest(f"prompt_txt has {len(lines)} lines, more than this server's limit of "
                             f"{limits.max_images} images")
    warnings: list[str] = []
    requests, own_seeds = [], []
    for number, text in enumerate(lines, start=1):
        line = read_line(text)
        own_seeds.append("seed" in line.fields)
        if line.warning:
            warnings.append(line.warning)
        line_req = line_request(req, line, warnings)
        try:
            check_generation(line_req, limits)
        except InvalidRequest as exc:
            raise InvalidRequest(f"prompt_txt line {number}: {exc}") from None
        requests.append(line_req)
    images = sum(r.batch_size * r.n_iter for r in requests)
    if images > limits.max_images:
        raise InvalidRequest(f"prompt_txt's lines make {images} images, more than this server's limit of "
                             f"{limits.max_images}")
    return LinesPlan(req, requests, own_seeds, args["checkbox_iterate"], args["checkbox_iterate_batch"], warnings)


def run_prompts_from_file(plan: LinesPlan, runner: Runner) -> ScriptOutput:
    """Run every line in order (on the worker); ``info`` describes the request itself, with the lines' lists."""
    req = plan.req
    seed = req.seed
    if (plan.iterate or plan.iterate_batch) and seed == -1:
        seed = resolve_seed(-1)
    images, prompts, infotexts = [], [], []
    extra: dict[str, Any] = {}
    for line_req, own_seed in zip(plan.requests, plan.own_seeds):
        if not own_seed:
            line_req = line_req.model_copy(update={"seed": seed})
        processed = runner.process(ProcessCall(line_req, runner.images, runner.mask))
        images += processed.images
        prompts += processed.info["all_prompts"]
        infotexts += processed.info["infotexts"]
        extra.update(processed.info["extra_generation_params"])
        if plan.iterate:
            seed = seed + req.batch_size * req.n_iter
    info = runner.describe(req)
    info.update(prompt=(prompts or [req.prompt or ""])[0], all_prompts=prompts or [req.prompt or ""],
                negative_prompt=req.negative_prompt or "", all_negative_prompts=[req.negative_prompt or ""],
                seed=seed, all_seeds=[seed], subseed=-1, all_subseeds=[-1], infotexts=infotexts or [""],
                index_of_first_image=0, is_using_inpainting_conditioning=False,
                extra_generation_params={**info["extra_generation_params"], **extra})
    return ScriptOutput(images, info)
