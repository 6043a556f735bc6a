"""X/Y/Z plot value lists: the text a client types for an axis → the values the cells get, as A1111 v1.2.1 reads it.

* The text is CSV (``"a, b", c`` is two values); empty items are dropped, the rest stripped (A1111 tests the
  item before stripping it, so the blank middle item of ``a, ,b`` stays, as an empty value).
* Integer axes: ``1-5`` → 1..5, ``1-10 (+3)`` → 1, 4, 7, 10 (the sign of the step is required), ``1-10 [4]`` →
  four evenly spaced values truncated to int; anything else is one value.
* Float axes: ``0-1 (+0.25)`` → 0, 0.25, ..., 1 (``numpy.arange(a, b + step, step)``, step 1 by default),
  ``0-1 [5]`` → ``numpy.linspace(0, 1, 5)``.
* Prompt order: every permutation of the listed tokens.

:func:`count_values` counts what a text gives from its range syntax alone, so a plot too large to run is refused
before any range is expanded into memory.

The range patterns keep A1111's unescaped ``.`` in the float forms (it matches any character), so the same text
splits the same way.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from enum import Enum
from typing import Any

import numpy as np


class ValueKind(Enum):
    """How an axis reads its values (A1111's ``AxisOption.type``)."""

    INT = "int"
    FLOAT = "float"
    TEXT = "str"
    PERMUTATIONS = "permutations"


_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*\d+(?:.\d*)?"
INT_STEP_RANGE = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(([+-]\d+)\s*\))?\s*")
INT_COUNT_RANGE = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\[(\d+)\s*\])?\s*")
FLOAT_STEP_RANGE = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*")
FLOAT_COUNT_RANGE = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\[(\d+(?:.\d*)?)\s*\])?\s*")


def split_values(text: str) -> list[str]:
    """The items of an axis's values text: CSV fields of every line, stripped, empty ones left out.

    Args:
        text: e.g. ``'cat, "a, b", dog'``.

    Returns:
        e.g. ``["cat", "a, b", "dog"]``.
    """
    rows = csv.reader(io.StringIO(text))
    return [item.strip() for item in itertools.chain.from_iterable(rows) if item]


def join_values(items: list[Any]) -> str:
    """The values text that :func:`split_values` reads back as ``items`` (CSV quoting where needed)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([str(item) for item in items])
    return buffer.getvalue()


def expand_int(item: Any) -> list[Any]:
    """One integer-axis item → its values (a range expands; anything else is kept for ``int()``)."""
    if not isinstance(item, str):
        return [item]
    stepped = INT_STEP_RANGE.fullmatch(item)
    if stepped is not None:
        start, end, step = stepped.groups()
        return list(range(int(start), int(end) + 1, int(step) if step is not None else 1))
    counted = INT_COUNT_RANGE.fullmatch(item)
    if counted is not None:
        start, end, count = counted.groups()
        return [int(x) for x in np.linspace(int(start), int(end), int(count)).tolist()]
    return [item]


def expand_float(item: Any) -> list[Any]:
    """One float-axis item → its values (a range expands; anything else is kept for ``float()``)."""
    if not isinstance(item, str):
        return [item]
    stepped = FLOAT_STEP_RANGE.fullmatch(item)
    if stepped is not None:
        start, end, step = stepped.groups()
        step_value = float(step) if step is not None else 1.0
        return np.arange(float(start), float(end) + step_value, step_value).tolist()
    counted = FLOAT_COUNT_RANGE.fullmatch(item)
    if counted is not None:
        start, end, count = counted.groups()
        return np.linspace(float(start), float(end), int(count)).tolist()
    return [item]


def count_int(item: Any) -> int:
    """How many values :func:`expand_int` gives for one item, from the range syntax alone.

    An item whose numbers do not read counts as one: expanding it raises the error the client should see.
    """
    if not isinstance(item, str):
        return 1
    try:
        stepped = INT_STEP_RANGE.fullmatch(item)
        if stepped is not None:
            start, end, step = stepped.groups()
            step_value = int(step) if step is not None else 1
            return len(range(int(start), int(end) + 1, step_value)) if step_value else 1
        counted = INT_COUNT_RANGE.fullmatch(item)
        if counted is not None:
            return int(counted.group(3))
    except (ValueError, TypeError):
        return 1
    return 1


def count_float(item: Any) -> int:
    """How many values :func:`expand_float` gives for one item, from the range syntax alone (numpy's ``arange``
    length is ``ceil((stop - start) / step)`` in doubles, computed here the same way)."""
    if not isinstance(item, str):
        return 1
    try:
        stepped = FLOAT_STEP_RANGE.fullmatch(item)
        if stepped is not None:
            start, end, step = stepped.groups()
            step_value = float(step) if step is not None else 1.0
            if not step_value:
                return 1
            return max(0, math.ceil((float(end) + step_value - float(start)) / step_value))
        counted = FLOAT_COUNT_RANGE.fullmatch(item)
        if counted is not None:
            return int(counted.group(3))
    except (ValueError, TypeError, OverflowError):
        return 1
    return 1


def count_values(kind: ValueKind, items: list[Any], limit: int) -> int:
    """How many values :func:`axis_values` would give, counted without expanding a single range.

    Args:
        kind: the axis's value kind.
        items: the split items or a client's list.
        limit: counting stops once the count passes it.

    Returns:
        The exact count when it is at most ``limit``; some number above ``limit`` otherwise.
    """
    if kind is ValueKind.PERMUTATIONS:
        total = 1
        for n in range(2, len(items) + 1):
            total *= n
            if total > limit:
                return total
        return total
    counter = count_int if kind is ValueKind.INT else count_float if kind is ValueKind.FLOAT else None
    total = 0
    for item in items:
        total += counter(item) if counter is not None else 1
        if total > limit:
            return total
    return total


def axis_values(kind: ValueKind, items: list[Any]) -> list[Any]:
    """The values an axis iterates over, converted to its kind.

    Args:
        kind: the axis's value kind.
        items: the split items (:func:`split_values`) or a client's list.

    Returns:
        ints, floats, strings or tuples of strings (permutations), in order.

    Raises:
        ValueError: an item that is not a number on a numeric axis (naming the item).
    """
    if kind is ValueKind.INT:
        return [_converted(int, value) for item in items for value in expand_int(item)]
    if kind is ValueKind.FLOAT:
        return [_converted(float, value) for item in items for value in expand_float(item)]
    if kind is ValueKind.PERMUTATIONS:
        return list(itertools.permutations([str(item) for item in items]))
    return [str(item) for item in items]


def _converted(convert, value: Any):
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not {'an integer' if convert is int else 'a number'}") from None
