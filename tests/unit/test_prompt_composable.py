"""``AND`` sub-prompts and weights, against cases worked out by hand from A1111 v1.2.1's
``get_multicond_prompt_list`` (split on the word ``AND``; each part may end with ``:<number>``)."""

from __future__ import annotations

from sdapi.prompts.composable import composable_batch, split_subprompts


def test_and_splits_into_weight_one_parts():
    assert split_subprompts("a cat AND a dog") == [("a cat", 1.0), (" a dog", 1.0)]


def test_part_weights():
    assert split_subprompts("a AND b :0.5") == [("a", 1.0), (" b", 0.5)]
    assert split_subprompts("a:1.5 AND b : -2 AND c:.25") == [("a", 1.5), (" b", -2.0), (" c", 0.25)]
    assert split_subprompts("a AND b:3.") == [("a", 1.0), (" b", 3.0)]


def test_a_prompt_without_and_can_carry_a_weight():
    assert split_subprompts("a photo of a cat:0.5") == [("a photo of a cat", 0.5)]
    assert split_subprompts("a photo of a cat  ") == [("a photo of a cat", 1.0)]


def test_weight_must_end_the_part():
    assert split_subprompts("(cat:1.2) AND dog") == [("(cat:1.2)", 1.0), (" dog", 1.0)]
    assert split_subprompts("cat:1e3") == [("cat:1e3", 1.0)]
    assert split_subprompts("cat:2 x") == [("cat:2 x", 1.0)]


def test_and_must_be_an_upper_case_word():
    assert split_subprompts("ANDROID AND x") == [("ANDROID", 1.0), (" x", 1.0)]
    assert split_subprompts("cats and dogs") == [("cats and dogs", 1.0)]


def test_a_line_break_inside_a_part_keeps_it_whole():
    assert split_subprompts("a\nb:0.5") == [("a\nb:0.5", 1.0)]


def test_empty_parts():
    assert split_subprompts("") == [("", 1.0)]
    assert split_subprompts("AND") == [("", 1.0), ("", 1.0)]


def test_batch_lists_each_distinct_text_once():
    # Leading spaces are kept, so " x" (after an AND) and "x" are different texts.
    per_image, texts = composable_batch(["x AND y:0.5", "x", "y AND x", "x AND y :2"])
    assert texts == ["x", " y", "y", " x"]
    assert per_image == [[(0, 1.0), (1, 0.5)], [(0, 1.0)], [(2, 1.0), (3, 1.0)], [(0, 1.0), (1, 2.0)]]
