"""A1111 v1.2.1's filename patterns (``samples_filename_pattern``, ``directories_filename_pattern``): the
``[tag]`` replacements of its ``FilenameGenerator`` and its ``sanitize_filename_part``.

A pattern is text with ``[tag]`` or ``[tag<arg>...]`` pieces. A known tag is replaced by its value; a tag whose
value is unknown (``None``) or that fails stays in the name as written; a few tags (``[batch_number]`` on a batch
of one, ``[denoising]`` without a strength) drop themselves and the text just before them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger("sdapi")

# Characters Windows refuses in names (and the path separators): A1111 turns them into "_" on every platform, so
# a pattern names the same files everywhere.
INVALID_CHARS = '<>:"/\\|?*\n'
INVALID_PREFIX = " "
INVALID_SUFFIX = " ."
MAX_PART_LENGTH = 128
DEFAULT_TIME_FORMAT = "%Y%m%d%H%M%S"

_NON_LETTERS = re.compile(r"[\s" + re.escape(string.punctuation) + r"]+")
# Text up to the next [tag] (or the end); tags hold no brackets.
_PIECE = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)")
# A tag's last <arg>, peeled off one at a time from the right.
_LAST_ARG = re.compile(r"(.*)<([^>]*)>$")


class _SkipWithText:
    """A tag value meaning: leave out this tag and the text before it."""


SKIP = _SkipWithText()


def sanitize_filename_part(text: str | None, replace_spaces: bool = True) -> str | None:
    """``text`` made safe as (part of) a file name: A1111's character replacements and 128-character cut."""
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate({ord(c): "_" for c in INVALID_CHARS})
    return text.lstrip(INVALID_PREFIX)[:MAX_PART_LENGTH].rstrip(INVALID_SUFFIX)


@dataclass
class NamingContext:
    """What the tags of one saved image read (A1111 reads them off its processing object ``p``).

    Args:
        seed, prompt: the image's (``prompt``: as sampled, ``<lora:…>`` tags removed; a grid's: the first
            image's styled prompt).
        width, height: the saved image's size.
        batch_index, iteration: the image's place in its batch and the batch's number (from 0).
        style_prompts: the prompts of the request's styles, for ``[prompt_no_styles]``.
        clip_skip: the ``CLIP_stop_at_last_layers`` option as stored.
        now: the clock (tests freeze it).
    """

    seed: Any = None
    prompt: str | None = None
    width: int = 0
    height: int = 0
    steps: Any = None
    cfg_scale: Any = None
    styles: list[str] = field(default_factory=list)
    sampler_name: str | None = None
    model_hash: str | None = None
    model_name: str | None = None
    job_timestamp: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    batch_index: int = 0
    iteration: int = 0
    denoising_strength: Any = None
    clip_skip: Any = None
    style_prompts: list[str] = field(default_factory=list)
    max_prompt_words: int = 8
    now: Callable[[], datetime] = datetime.now


def _styles(c: NamingContext):
    return sanitize_filename_part(", ".join(s for s in c.styles if s != "None") or "None", replace_spaces=False)


def _prompt_no_styles(c: NamingContext) -> str | None:
    """The prompt with each style's text taken out again (around ``{prompt}`` for wrapping styles)."""
    if c.prompt is None:
        return None
    text = c.prompt
    for style in c.style_prompts:
        if not style:
            continue
        for part in style.split("{prompt}"):
            text = text.replace(part, "").replace(", ,", ",").strip().strip(",")
        text = text.replace(style, "").strip().strip(",").strip()
    return sanitize_filename_part(text, replace_spaces=False)


def _prompt_words(c: NamingContext) -> str | None:
    words = [w for w in _NON_LETTERS.split(c.prompt or "") if w] or ["empty"]
    return sanitize_filename_part(" ".join(words[:c.max_prompt_words]), replace_spaces=False)


def _datetime(c: NamingContext, *args: str) -> str | None:
    """``[datetime]``, ``[datetime<format>]``, ``[datetime<format><time zone>]``; an unknown zone means local time,
    a bad format the default one."""
    time_format = args[0] if args and args[0] else DEFAULT_TIME_FORMAT
    zone = None
    if len(args) > 1:
        try:
            zone = ZoneInfo(args[1])
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
    moment = c.now().astimezone(zone)
    try:
        text = moment.strftime(time_format)
    except (ValueError, TypeError):
        text = moment.strftime(DEFAULT_TIME_FORMAT)
    return sanitize_filename_part(text, replace_spaces=False)


def _hasprompt(c: NamingContext, *args: str) -> str | None:
    """``[hasprompt<word|default><word2>...]``: each word the prompt holds (lower-cased), else its default."""
    lower = c.prompt.lower()  # no prompt: fails, so the tag stays as written (as in A1111)
    found = ""
    for arg in args:
        if arg:
            parts = arg.split("|")
            expected, default = parts[0].lower(), parts[1] if len(parts) > 1 else ""
            if expected in lower:
                found += expected
            else:
                found += default
    return sanitize_filename_part(found)


TAGS: dict[str, Callable[..., Any]] = {
    "seed": lambda c: c.seed if c.seed is not None else "",
    "steps": lambda c: c.steps,
    "cfg": lambda c: c.cfg_scale,
    "width": lambda c: c.width,
    "height": lambda c: c.height,
    "styles": _styles,
    "sampler": lambda c: sanitize_filename_part(c.sampler_name, replace_spaces=False),
    "model_hash": lambda c: c.model_hash,
    "model_name": lambda c: sanitize_filename_part(c.model_name, replace_spaces=False),
    "date": lambda c: c.now().strftime("%Y-%m-%d"),
    "datetime": _datetime,
    "job_timestamp": lambda c: c.job_timestamp,
    "prompt_hash": lambda c: hashlib.sha256(c.prompt.encode()).hexdigest()[:8],
    "prompt": lambda c: sanitize_filename_part(c.prompt),
    "prompt_no_styles": _prompt_no_styles,
    "prompt_spaces": lambda c: sanitize_filename_part(c.prompt, replace_spaces=False),
    "prompt_words": _prompt_words,
    "batch_number": lambda c: SKIP if c.batch_size == 1 else c.batch_index + 1,
    "generation_number": lambda c: (SKIP if c.n_iter == 1 and c.batch_size == 1
                                    else c.iteration * c.batch_size + c.batch_index + 1),
    "hasprompt": _hasprompt,
    "clip_skip": lambda c: c.clip_skip,
    "denoising": lambda c: c.denoising_strength if c.denoising_strength else SKIP,
}


def _tag_and_args(tag: str) -> tuple[str, list[str]]:
    args: list[str] = []
    while (match := _LAST_ARG.match(tag)) is not None:
        tag, arg = match.groups()
        args.insert(0, arg)
    return tag, args


def apply_pattern(pattern: str, context: NamingContext) -> str:
    """``pattern`` with its tags replaced for ``context`` (A1111's ``FilenameGenerator.apply``)."""
    result = ""
    for match in _PIECE.finditer(pattern):
        text, tag = match.groups()
        if tag is None:
            result += text
            continue
        name, args = _tag_and_args(tag)
        value = None
        replace = TAGS.get(name.lower())
        if replace is not None:
            try:
                value = replace(context, *args)
            except Exception:  # noqa: BLE001 - a tag that cannot be filled stays as written, as in A1111
                log.warning("Could not fill [%s] in a file name; it is kept as written", name, exc_info=True)
            if value is SKIP:
                continue
            if value is not None:
                result += text + str(value)
                continue
        result += f"{text}[{name}]"
    return result
