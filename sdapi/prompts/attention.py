"""Emphasis: A1111 v1.2.1's ``parse_prompt_attention``, which turns a prompt into weighted text runs.

``(x)`` multiplies by 1.1, ``[x]`` divides by 1.1, ``(x:1.3)`` multiplies by 1.3; brackets nest (weights multiply).
``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are the literal characters. Closers without an opener are plain text;
openers never closed apply to the end of the prompt. ``BREAK`` (a whole word, upper case) becomes a marker run
``("BREAK", -1.0)`` that starts a new 75-token chunk. Neighbouring runs of equal weight are merged.

Quirks kept on purpose, because prompts pasted from A1111 depend on them:

* A backslash before any other character is dropped (the character stays).
* ``:1.3)`` needs the number right after the colon: ``(x: 1.3)`` is ``x: 1.3`` at weight 1.1.
* A malformed number such as ``(x:1.2.3)`` raises ``ValueError``, which A1111 reports as a 500.
* Brackets around a ``BREAK`` multiply its marker weight too, after which it no longer equals -1 and the encoder
  reads it as the word "BREAK".
"""

from __future__ import annotations

import re

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK_TEXT = "BREAK"
BREAK_WEIGHT = -1.0

# One alternative per token kind; every character of a prompt belongs to exactly one token.
_TOKEN = re.compile(r"""
      \\(?P<escaped>[()\[\]\\])
    | (?P<backslash>\\)
    | (?P<open_round>\()
    | (?P<open_square>\[)
    | :(?P<weight>[+-]?[.\d]+)\)
    | (?P<close_round>\))
    | (?P<close_square>\])
    | [^\\()\[\]:]+
    | :
""", re.VERBOSE)

_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.DOTALL)


def is_break(text: str, weight: float) -> bool:
    """Whether a run is the ``BREAK`` marker (exactly as A1111's encoder tests it).

    Args:
        text: the run's text.
        weight: the run's weight.

    Returns:
        ``True`` for the unmodified marker run.
    """
    return text == BREAK_TEXT and weight == BREAK_WEIGHT


def parse_attention(prompt: str) -> list[tuple[str, float]]:
    """Split a prompt into ``(text, weight)`` runs with A1111's emphasis rules.

    Args:
        prompt: one scheduled prompt text (prompt editing already resolved).

    Returns:
        At least one run; ``[("", 1.0)]`` for an empty prompt.

    Raises:
        ValueError: a ``(x:<number>)`` whose number does not parse, e.g. ``(x:.)``.
    """
    runs: list[list] = []
    open_round: list[int] = []
    open_square: list[int] = []
    for match in _TOKEN.finditer(prompt):
        kind = match.lastgroup
        if kind == "escaped":
            runs.append([match.group("escaped"), 1.0])
        elif kind == "backslash":
            runs.append(["", 1.0])
        elif kind == "open_round":
            open_round.append(len(runs))
        elif kind == "open_square":
            open_square.append(len(runs))
        elif kind == "weight" and open_round:
            _multiply_from(runs, open_round.pop(), float(match.group("weight")))
        elif kind == "close_round" and open_round:
            _multiply_from(runs, open_round.pop(), ROUND_MULTIPLIER)
        elif kind == "close_square" and open_square:
            _multiply_from(runs, open_square.pop(), SQUARE_MULTIPLIER)
        else:
            _append_text(runs, match.group(0))
    # Unclosed openers reach to the end; A1111 applies all round ones before the square ones (float order matters).
    for start in open_round:
        _multiply_from(runs, start, ROUND_MULTIPLIER)
    for start in open_square:
        _multiply_from(runs, start, SQUARE_MULTIPLIER)
    return _merge_equal_neighbours(runs) if runs else [("", 1.0)]


def _append_text(runs: list[list], text: str) -> None:
    """Add plain text, with a ``BREAK`` marker run wherever the word occurs."""
    for index, part in enumerate(_BREAK.split(text)):
        if index:
            runs.append([BREAK_TEXT, BREAK_WEIGHT])
        runs.append([part, 1.0])


def _multiply_from(runs: list[list], start: int, multiplier: float) -> None:
    """Multiply the weight of every run from ``start`` on (the runs inside a bracket just closed)."""
    for run in runs[start:]:
        run[1] *= multiplier


def _merge_equal_neighbours(runs: list[list]) -> list[tuple[str, float]]:
    """Join adjacent runs whose weights are exactly equal."""
    merged: list[list] = [runs[0]]
    for text, weight in runs[1:]:
        if merged[-1][1] == weight:
            merged[-1][0] += text
        else:
            merged.append([text, weight])
    return [(text, weight) for text, weight in merged]
