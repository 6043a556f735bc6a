"""Composable diffusion: ``a AND b :0.5`` splits a prompt into sub-prompts with weights (A1111 v1.2.1).

Each part may end with ``:<number>`` (spaces allowed around the colon), its weight; the default is 1.0.
Trailing whitespace of a part is dropped, leading whitespace kept. This applies to a prompt without ``AND`` too:
``a cat:0.5`` is the sub-prompt ``a cat`` at weight 0.5. ``AND`` must be a whole word in upper case.
"""

from __future__ import annotations

import re

_AND = re.compile(r"\bAND\b")
_TEXT_AND_WEIGHT = re.compile(r"^(?P<text>.*?)(?:\s*:\s*(?P<weight>[-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def split_subprompts(prompt: str) -> list[tuple[str, float]]:
    """Sub-prompts of one prompt with their weights, in order.

    Args:
        prompt: a positive prompt (extra-network tags already removed).

    Returns:
        ``(text, weight)`` for each ``AND`` part.
    """
    parts = []
    for part in _AND.split(prompt):
        match = _TEXT_AND_WEIGHT.search(part)
        if match is None:  # a line break inside the part: '.' does not cross it
            parts.append((part, 1.0))
            continue
        weight = match.group("weight")
        parts.append((match.group("text"), 1.0 if weight is None else float(weight)))
    return parts


def composable_batch(prompts: list[str]) -> tuple[list[list[tuple[int, float]]], list[str]]:
    """Sub-prompts of a batch of prompts, each distinct text listed once.

    Args:
        prompts: one positive prompt per image.

    Returns:
        ``(per_image, texts)``: for each image its ``(index into texts, weight)`` pairs; the distinct texts.
    """
    texts: list[str] = []
    index_of: dict[str, int] = {}
    per_image = []
    for prompt in prompts:
        pairs = []
        for text, weight in split_subprompts(prompt):
            if text not in index_of:
                index_of[text] = len(texts)
                texts.append(text)
            pairs.append((index_of[text], weight))
        per_image.append(pairs)
    return per_image, texts
