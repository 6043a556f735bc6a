"""Prompt schedules: which text a prompt stands for at each sampling step (A1111 v1.2.1).

A schedule is a list of ``(end_at_step, text)`` pairs in ascending step order: ``text`` applies while the
sampler's step counter is ``<= end_at_step`` (see :func:`schedule_index`). ``[from:to:when]`` switches after
``when`` steps (``when < 1`` is a fraction of the steps, truncated: ``int(when * steps)``; never above ``steps``);
``[a|b]`` changes at every step (step 1 → ``a``, 2 → ``b``, 3 → ``a`` ...).

Quirks of A1111 kept on purpose:

* An alternation option contributes only its *first item*: in ``[a (b)|c]`` the first option is ``"a "``
  (plain text runs up to the next bracket), because A1111's tree transformer takes ``next()`` of the option.
* An empty alternation option (``[a|]``) fails with lark's ``VisitError`` once a step selects it.
* A step counter beyond the last ``end_at_step`` (DPM adaptive, or a second-order sampler with
  ``dont_fix_second_order_samplers_schedule``) selects the *first* entry again.
"""

from __future__ import annotations

from sdapi.prompts.syntax import (
    Alternation,
    Emphasis,
    Node,
    Scheduled,
    Sequence,
    Text,
    parse_prompt_syntax,
)


class VisitError(RuntimeError):
    """Named after the lark exception A1111 v1.2.1 raises (as a 500) for an empty alternation option."""


_EMPTY_OPTION_MESSAGE = 'Error trying to process rule "start":\n\ngenerator raised StopIteration'


def prompt_schedule(prompt: str, steps: int) -> list[tuple[int, str]]:
    """The ``(end_at_step, text)`` schedule of one prompt.

    Args:
        prompt: one ``AND`` sub-prompt or a negative prompt.
        steps: A1111's schedule length (sampling steps, doubled for second-order samplers).

    Returns:
        At least one entry; ``[(steps, prompt)]`` when the prompt has no editing syntax or does not parse.

    Raises:
        VisitError: a step selects an empty alternation option.
        OverflowError: ``when`` is infinite (``[a:b:1e999]``), as in A1111.
    """
    nodes = parse_prompt_syntax(prompt)
    if nodes is None:
        return [(steps, prompt)]
    return [(step, text_at_step(nodes, step, steps)) for step in schedule_steps(nodes, steps)]


def prompt_schedules(prompts: list[str], steps: int) -> dict[str, list[tuple[int, str]]]:
    """Schedules of several prompts, each distinct prompt computed once.

    Args:
        prompts: prompt texts (duplicates allowed).
        steps: schedule length.

    Returns:
        Schedule by prompt text.
    """
    return {prompt: prompt_schedule(prompt, steps) for prompt in dict.fromkeys(prompts)}


def end_step(when: str, steps: int) -> int:
    """The last step of a ``[from:to:when]``'s ``from`` part.

    Args:
        when: the number as written.
        steps: schedule length.

    Returns:
        ``int(when * steps)`` for ``when < 1``, else ``int(when)``; at most ``steps`` (may be negative).
    """
    value = float(when)
    if value < 1:
        value *= steps
    return min(steps, int(value))


def schedule_steps(nodes: tuple[Node, ...], steps: int) -> list[int]:
    """The steps at which the text may change: ``steps``, every ``when``, and every step if anything alternates."""
    found = {steps}
    for node in _walk(nodes):
        if isinstance(node, Scheduled):
            found.add(end_step(node.when, steps))
        elif isinstance(node, Alternation):
            found.update(range(1, steps + 1))
    return sorted(found)


def text_at_step(nodes: tuple[Node, ...], step: int, steps: int) -> str:
    """The prompt text in force at ``step``.

    Args:
        nodes: the parsed prompt.
        step: the step counter value.
        steps: schedule length (to resolve fractional ``when``).

    Returns:
        The text, emphasis brackets included.
    """
    return "".join(_render(node, step, steps) for node in nodes)


def schedule_index(end_steps: list[int], step: int) -> int:
    """Which schedule entry a step counter selects: the first whose end is not before it, else the first one.

    Args:
        end_steps: the schedule's ``end_at_step`` values, ascending.
        step: A1111's denoiser step counter.

    Returns:
        An index into the schedule.
    """
    for index, end in enumerate(end_steps):
        if step <= end:
            return index
    return 0


def _render(node: Node, step: int, steps: int) -> str:
    if isinstance(node, Text):
        return node.text
    if isinstance(node, (Sequence, Emphasis)):
        children = node.items if isinstance(node, Sequence) else node.parts
        texts = []
        for child in children:  # a loop, not a generator: deep nesting costs one frame per level
            texts.append(_render(child, step, steps))
        return "".join(texts)
    if isinstance(node, Scheduled):
        if step <= end_step(node.when, steps):
            return "" if node.before is None else _render(node.before, step, steps)
        return _render(node.after, step, steps)
    option = node.options[(step - 1) % len(node.options)]
    if not option.items:
        raise VisitError(_EMPTY_OPTION_MESSAGE)
    return _render(option.items[0], step, steps)


def _walk(nodes):
    """Every node of the tree (iteratively, so deep nesting needs no stack)."""
    pending = list(nodes)
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, Sequence):
            pending.extend(node.items)
        elif isinstance(node, Emphasis):
            pending.extend(node.parts)
        elif isinstance(node, Scheduled):
            pending.append(node.after)
            if node.before is not None:
                pending.append(node.before)
        elif isinstance(node, Alternation):
            pending.extend(node.options)
