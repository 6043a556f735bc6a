"""A1111's extra-network tags in prompts (``<lora:name:0.8>``, ``<hypernet:name>``, …).

Every ``<word:args>`` tag is removed from the text that reaches the conditioning and collected by network type.
As in A1111 (``modules/extra_networks.py``), the tags of a batch come from its **first** prompt only, and
arguments are split on ``:``; an argument of the form ``key=value`` is a named one (A1111 v1.3+).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXTRA_NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")


@dataclass(frozen=True)
class ExtraNetworkParams:
    """The arguments of one tag, e.g. ``("name", "0.5", "unet=1")`` for ``<lora:name:0.5:unet=1>``.

    Args:
        items: the ``:``-separated arguments in order.
    """

    items: tuple[str, ...]

    @property
    def positional(self) -> list[str]:
        """Arguments that are not ``key=value``."""
        return [item for item in self.items if "=" not in item]

    @property
    def named(self) -> dict[str, str]:
        """``key=value`` arguments as a dict (the first ``=`` splits)."""
        return dict(item.split("=", 1) for item in self.items if "=" in item)


def parse_prompt(prompt: str) -> tuple[str, dict[str, list[ExtraNetworkParams]]]:
    """Remove every extra-network tag from one prompt.

    Args:
        prompt: the prompt as the user wrote it.

    Returns:
        ``(prompt without tags, {network type: [params per tag, in prompt order]})``.
    """
    found: dict[str, list[ExtraNetworkParams]] = {}

    def collect(match: re.Match) -> str:
        found.setdefault(match.group(1), []).append(ExtraNetworkParams(tuple(match.group(2).split(":"))))
        return ""

    return EXTRA_NETWORK_TAG.sub(collect, prompt), found


def parse_prompts(prompts: list[str]) -> tuple[list[str], dict[str, list[ExtraNetworkParams]]]:
    """Remove the tags from every prompt of a batch; the networks come from the first prompt.

    Args:
        prompts: the batch's prompts.

    Returns:
        ``(prompts without tags, the first prompt's networks)``; an empty batch has no networks.
    """
    stripped, networks = [], None
    for prompt in prompts:
        text, found = parse_prompt(prompt)
        stripped.append(text)
        if networks is None:
            networks = found
    return stripped, networks or {}
