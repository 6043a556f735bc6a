"""Prompt editing and alternation schedules, against cases worked out by hand from A1111 v1.2.1's
``get_learned_conditioning_prompt_schedules`` (``when < 1`` → ``int(when * steps)``, else ``int(when)``, capped at
``steps``; text switches once the step counter passes ``when``; alternation picks option ``(step - 1) % n``).
"""

from __future__ import annotations

import pytest

from sdapi.prompts.scheduling import VisitError, end_step, prompt_schedule, prompt_schedules, schedule_index


def sched(prompt: str, steps: int = 10) -> list[tuple[int, str]]:
    return prompt_schedule(prompt, steps)


def test_plain_prompt_is_one_entry():
    assert sched("test") == [(10, "test")]
    assert sched("") == [(10, "")]


def test_from_to_with_a_fraction_of_20_steps():
    assert sched("a [cat:dog:0.5] b", 20) == [(10, "a cat b"), (20, "a dog b")]


def test_from_to_at_an_absolute_step():
    assert sched("[cat:dog:7]", 20) == [(7, "cat"), (20, "dog")]


def test_to_when_adds_text_after_the_step():
    assert sched("a [b:3]") == [(3, "a "), (10, "a b")]
    assert sched("a [b: 3]") == [(3, "a "), (10, "a b")]
    assert sched("a [b:.5] c") == [(5, "a  c"), (10, "a b c")]


def test_from_empty_when_removes_text_after_the_step():
    assert sched("a [b::3] c") == [(3, "a b c"), (10, "a  c")]


def test_when_is_truncated_not_rounded():
    assert end_step("0.29", 100) == 28  # 0.29 * 100 == 28.999999999999996
    assert end_step("0.3", 10) == 3
    assert end_step("1.5", 10) == 1  # >= 1 is a step number
    assert end_step("1", 10) == 1
    assert end_step("1e1", 10) == 10


def test_when_beyond_the_steps_is_capped():
    assert sched("[cat:dog:30]", 20) == [(20, "cat")]


def test_negative_when_never_uses_from():
    schedule = sched("[a:b:-1]")
    assert schedule == [(-10, "a"), (10, "b")]
    assert schedule_index([end for end, _ in schedule], 0) == 1


def test_spaces_around_parts_are_kept():
    assert sched("a [b : c : 1] d") == [(1, "a b  d"), (10, "a  c  d")]


def test_emphasis_survives_into_the_texts():
    assert sched("[(a:2):3]") == [(3, ""), (10, "(a:2)")]
    assert sched("(x:[b:c:2])") == [(2, "(x:b)"), (10, "(x:c)")]
    assert sched("a [[[b]]:2]") == [(2, "a "), (10, "a [[b]]")]


def test_nested_editing():
    assert sched("a[b:[c:d:2]:1]e") == [(1, "abe"), (2, "ace"), (10, "ade")]


def test_several_edits_merge_their_steps():
    prompt = ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
              "[ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]")
    assert sched(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


def test_alternation_changes_every_step():
    assert sched("[cat|dog]", 4) == [(1, "cat"), (2, "dog"), (3, "cat"), (4, "dog")]
    assert sched("a [b|c|d]", 4) == [(1, "a b"), (2, "a c"), (3, "a d"), (4, "a b")]
    assert sched("[a|(b:1.1)]", 2) == [(1, "a"), (2, "(b:1.1)")]


def test_alternation_with_editing():
    assert sched("[a:b:2][c|d]", 4) == [(1, "ac"), (2, "ad"), (3, "bc"), (4, "bd")]
    assert sched("[[a:b:2]|c]", 4) == [(1, "a"), (2, "c"), (3, "b"), (4, "c")]


def test_alternation_option_keeps_only_its_first_item():
    # A1111 takes next() of the option: plain text up to the first bracket, or one construct.
    assert sched("[a (b)|c]", 2) == [(1, "a "), (2, "c")]
    assert sched("[[x:y:1] z|c]", 2) == [(1, "x"), (2, "c")]
    assert sched("[ b|c]", 2) == [(1, " b"), (2, "c")]


def test_empty_alternation_option_fails_like_a1111_once_selected():
    with pytest.raises(VisitError, match="generator raised StopIteration"):
        sched("[a|]", 2)
    assert sched("[a|]", 1) == [(1, "a")]


@pytest.mark.parametrize("prompt", [
    "a [unbalanced",
    "a (unbalanced",
    "a|b",
    "(a|b)",
    "[a:b:c]",
    "[a:b:3 ]",
    "[a:b]",
    "[a|b:1]",
    "[a:b:2:3]",
    r"\[a:b:2\]",
    "[ab:2",
    "a \\",
])
def test_malformed_prompts_are_used_literally(prompt):
    assert sched(prompt) == [(10, prompt)]


def test_stray_brackets_stay_text_around_valid_constructs():
    assert sched("((a][:b:c [d:3]") == [(3, "((a][:b:c "), (10, "((a][:b:c d")]
    assert sched("((masterpiece), best quality, [cat:dog:2]", 4) == [
        (2, "((masterpiece), best quality, cat"), (4, "((masterpiece), best quality, dog")]
    assert sched("[a [b:c:3]") == [(3, "[a b"), (10, "[a c")]


def test_escaped_colon_is_text():
    assert sched(r"[a\:b:2]") == [(2, ""), (10, r"a\:b")]


def test_leftover_extra_network_tags_are_text():
    assert sched("<lora:x:0.5> [a:b:2]", 4) == [(2, "<lora:x:0.5> a"), (4, "<lora:x:0.5> b")]


def test_deep_nesting_does_not_crash():
    prompt = "(" * 250 + "[a:b:2]" + ")" * 250
    schedule = sched(prompt, 4)
    assert [end for end, _ in schedule] == [2, 4]
    assert schedule[0][1] == "(" * 250 + "a" + ")" * 250


def test_schedule_index_follows_the_step_counter():
    ends = [10, 20]
    assert [schedule_index(ends, s) for s in (0, 10, 11, 20)] == [0, 0, 1, 1]
    # Past the last entry A1111 falls back to the first one.
    assert schedule_index(ends, 21) == 0


def test_distinct_prompts_are_scheduled_once():
    schedules = prompt_schedules(["[a:b:1]", "x", "[a:b:1]"], 2)
    assert schedules == {"[a:b:1]": [(1, "a"), (2, "b")], "x": [(2, "x")]}
