"""The prompt-editing syntax tree: ``[from:to:when]``, ``[to:when]``, ``[from::when]``, ``[a|b|c]``.

This recognises the same language as A1111 v1.2.1's lark grammar in ``prompt_parser.py``:

* Inside a bracket construct the text is a sequence of *items*: plain text (any character but ``\\ [ ] ( ) : |``,
  or a backslash and the next character, which stays escaped), emphasis ``(p)``, ``(p:p)``, ``[p]``, a scheduled
  ``[p:p:N]`` / ``[p:N]`` (``N`` a signed number, whitespace allowed before it), or an alternation ``[p|p...]``.
  There, every bracket must close.
* At the top level, a ``[ ] ( ) :`` that does not start a complete construct is literal text. A ``|`` outside any
  alternation, or a backslash at the end of the prompt or before a line break, makes the whole prompt unparsable;
  A1111 then uses it literally for every step.

Where the grammar is ambiguous at the top level (``[a:b:1]:2]`` is either literal or a scheduled ``[a:b:1]``
followed by ``:2]``), A1111's Earley parser settles ties by the iteration order of a Python ``set``, so its answer
changes with ``PYTHONHASHSEED``. We settle them one way: a bracket that starts a complete construct is that construct.

Plain text is matched greedily, which decides what "first item" means for alternation (see
:mod:`sdapi.prompts.scheduling`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

# A1111 runs out of Python stack somewhere between 200 and 400 levels. Brackets nested deeper than this are
# literal text here instead (the text is the same; only editing syntax that deep would be lost), never an error.
MAX_NESTING = 100

# lark's SIGNED_NUMBER (ASCII digits, optional fraction and exponent) right before the closing "]".
_NUMBER = re.compile(r"\s*([+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?))\]")
_SPECIAL = frozenset("\\[]():|")
_TOP_LEVEL_LITERAL = frozenset("[]():")


@dataclass(frozen=True)
class Text:
    """Text used as written: plain text, or a bracket/colon that is part of an emphasis or left literal."""

    text: str


@dataclass(frozen=True)
class Sequence:
    """The items inside a construct, in order (A1111's ``prompt`` rule)."""

    items: tuple["Node", ...]


@dataclass(frozen=True)
class Emphasis:
    """``(p)``, ``(p:p)`` or ``[p]``: brackets kept in the text, the parts inside still scheduled."""

    parts: tuple["Node", ...]


@dataclass(frozen=True)
class Scheduled:
    """``[before:after:when]``; ``before`` is ``None`` for ``[after:when]``.

    ``when`` is the number as written; :func:`sdapi.prompts.scheduling.end_step` turns it into a step.
    """

    before: Sequence | None
    after: Sequence
    when: str


@dataclass(frozen=True)
class Alternation:
    """``[a|b|...]``: option ``(step - 1) % len(options)`` at each step."""

    options: tuple[Sequence, ...]


Node = Union[Text, Sequence, Emphasis, Scheduled, Alternation]


class _Unparsable(Exception):
    """The construct being read is not well formed."""


class _TooDeep(Exception):
    """The construct being read nests deeper than :data:`MAX_NESTING`."""


def parse_prompt_syntax(prompt: str) -> tuple[Node, ...] | None:
    """Parse a prompt into top-level nodes.

    Args:
        prompt: the prompt text (one ``AND`` sub-prompt, or a negative prompt).

    Returns:
        The nodes in order, or ``None`` when the prompt is not in the language (A1111 then uses it as it is).
    """
    return _Parser(prompt).top_level()


class _Parser:
    """Recursive descent over one prompt; each construct start is parsed at most once (memoised)."""

    def __init__(self, text: str):
        self.text = text
        self._constructs: dict[int, tuple[Node, int] | None] = {}

    def top_level(self) -> tuple[Node, ...] | None:
        nodes: list[Node] = []
        i, n = 0, len(self.text)
        while i < n:
            char = self.text[i]
            if char in "[(":
                parsed = self._try_construct(i)
                if parsed is not None:
                    nodes.append(parsed[0])
                    i = parsed[1]
                    continue
            if char in _TOP_LEVEL_LITERAL:
                nodes.append(Text(char))
                i += 1
                continue
            if char == "|":
                return None
            end = self._plain_end(i)
            if end is None:
                return None
            nodes.append(Text(self.text[i:end]))
            i = end
        return tuple(nodes)

    def _try_construct(self, start: int) -> tuple[Node, int] | None:
        """The construct starting at ``start`` and where it ends, or ``None`` if there is none (top level only)."""
        try:
            return self._construct(start, depth=0)
        except (_Unparsable, _TooDeep):
            return None

    def _construct(self, start: int, depth: int) -> tuple[Node, int]:
        """Parse the construct opening at ``start``; memoised because the answer does not depend on the caller."""
        if start in self._constructs:
            found = self._constructs[start]
            if found is None:
                raise _Unparsable
            return found
        if depth > MAX_NESTING:
            raise _TooDeep
        try:
            found = self._round(start, depth) if self.text[start] == "(" else self._square(start, depth)
        except _Unparsable:
            self._constructs[start] = None
            raise
        self._constructs[start] = found
        return found

    def _round(self, start: int, depth: int) -> tuple[Node, int]:
        """``(p)`` or ``(p:p)``."""
        first, i = self._sequence(start + 1, depth)
        if self._at(i) == ")":
            return Emphasis((Text("("), first, Text(")"))), i + 1
        if self._at(i) == ":":
            second, j = self._sequence(i + 1, depth)
            if self._at(j) == ")":
                return Emphasis((Text("("), first, Text(":"), second, Text(")"))), j + 1
        raise _Unparsable

    def _square(self, start: int, depth: int) -> tuple[Node, int]:
        """``[p]``, ``[p|p...]``, ``[p:N]`` or ``[p:p:N]``."""
        first, i = self._sequence(start + 1, depth)
        closer = self._at(i)
        if closer == "]":
            return Emphasis((Text("["), first, Text("]"))), i + 1
        if closer == "|":
            return self._alternation(first, i, depth)
        if closer == ":":
            number = _NUMBER.match(self.text, i + 1)
            if number:
                return Scheduled(None, first, number.group(1)), number.end()
            second, j = self._sequence(i + 1, depth)
            number = _NUMBER.match(self.text, j + 1) if self._at(j) == ":" else None
            if number:
                return Scheduled(first, second, number.group(1)), number.end()
        raise _Unparsable

    def _alternation(self, first: Sequence, i: int, depth: int) -> tuple[Node, int]:
        options = [first]
        while self._at(i) == "|":
            option, i = self._sequence(i + 1, depth)
            options.append(option)
        if self._at(i) != "]":
            raise _Unparsable
        return Alternation(tuple(options)), i + 1

    def _sequence(self, i: int, depth: int) -> tuple[Sequence, int]:
        """Items from ``i`` up to the first ``: | ] )`` at this level (or the end of the text)."""
        items: list[Node] = []
        while i < len(self.text) and self.text[i] not in ":|])":
            if self.text[i] in "[(":
                node, i = self._construct(i, depth + 1)
            else:
                end = self._plain_end(i)
                if end is None:
                    raise _Unparsable
                node, i = Text(self.text[i:end]), end
            items.append(node)
        return Sequence(tuple(items)), i

    def _plain_end(self, i: int) -> int | None:
        """End of the plain run starting at ``i``; ``None`` when it hits a backslash with nothing to escape."""
        text, n = self.text, len(self.text)
        while i < n:
            char = text[i]
            if char == "\\":
                if i + 1 >= n or text[i + 1] == "\n":
                    return None
                i += 2
            elif char in _SPECIAL:
                break
            else:
                i += 1
        return i

    def _at(self, i: int) -> str:
        return self.text[i] if i < len(self.text) else ""
