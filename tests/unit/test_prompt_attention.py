"""Emphasis parsing, against cases worked out by hand from A1111 v1.2.1's ``parse_prompt_attention``.

Expected weights are written as the products A1111 computes, in its order (innermost bracket first; unclosed
round brackets before unclosed square ones), so float results compare exactly.
"""

from __future__ import annotations

import pytest

from sdapi.prompts.attention import BREAK_WEIGHT, is_break, parse_attention

UP = 1.1
DOWN = 1 / 1.1


def test_plain_text_is_one_run():
    assert parse_attention("normal text") == [("normal text", 1.0)]


def test_empty_prompt_is_one_empty_run():
    assert parse_attention("") == [("", 1.0)]


def test_round_and_square_brackets():
    assert parse_attention("an (important) word") == [("an ", 1.0), ("important", UP), (" word", 1.0)]
    assert parse_attention("a [minor] word") == [("a ", 1.0), ("minor", DOWN), (" word", 1.0)]


def test_explicit_weight():
    assert parse_attention("a (cat:1.3) b") == [("a ", 1.0), ("cat", 1.3), (" b", 1.0)]
    assert parse_attention("(cat:0.5)") == [("cat", 0.5)]
    assert parse_attention("(cat:-1)") == [("cat", -1.0)]


def test_nesting_multiplies():
    assert parse_attention("((x))") == [("x", 1.0 * UP * UP)]
    assert parse_attention("[[x]]") == [("x", 1.0 * DOWN * DOWN)]
    assert parse_attention("((x:1.3))") == [("x", 1.0 * 1.3 * UP)]
    assert parse_attention("(a [b] c)") == [("a ", UP), ("b", DOWN * UP), (" c", UP)]


def test_a1111_documented_example():
    assert parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).") == [
        ("a ", 1.0),
        ("house", 1.3 * UP * UP),
        (" ", UP),
        ("on", DOWN * UP),
        (" a ", UP),
        ("hill", 0.5 * UP),
        (", sun, ", UP),
        ("sky", UP * UP * UP * UP),
        (".", UP),
    ]


def test_weight_needs_the_number_right_after_the_colon():
    # ":" and " 1.3" are plain text; the ")" closes with the default 1.1.
    assert parse_attention("(x: 1.3)") == [("x: 1.3", UP)]
    assert parse_attention("(x:1.3 )") == [("x:1.3 ", UP)]


def test_malformed_weight_raises_like_a1111():
    with pytest.raises(ValueError):
        parse_attention("(x:1.2.3)")
    with pytest.raises(ValueError):
        parse_attention("(x:.)")


def test_unbalanced_brackets():
    assert parse_attention("(unbalanced") == [("unbalanced", UP)]
    assert parse_attention("a ) b ] c") == [("a ) b ] c", 1.0)]
    assert parse_attention("x (y [z") == [("x ", 1.0), ("y ", UP), ("z", UP * DOWN)]
    # A weight closer with no round bracket open is text.
    assert parse_attention("a :1.5) b") == [("a :1.5) b", 1.0)]


def test_escapes_are_literal_characters():
    assert parse_attention(r"\(literal\]") == [("(literal]", 1.0)]
    assert parse_attention(r"a \\ b") == [("a \\ b", 1.0)]
    assert parse_attention(r"\((x)\)") == [("(", 1.0), ("x", UP), (")", 1.0)]


def test_a_lone_backslash_is_dropped():
    assert parse_attention(r"a\xb") == [("axb", 1.0)]


def test_equal_neighbours_merge():
    assert parse_attention("(unnecessary)(parens)") == [("unnecessaryparens", UP)]
    assert parse_attention("a (b:1.0) c") == [("a b c", 1.0)]


def test_break_is_a_marker_run():
    assert parse_attention("a BREAK b") == [("a", 1.0), ("BREAK", BREAK_WEIGHT), ("b", 1.0)]
    assert parse_attention("(a) BREAK b") == [("a", UP), ("", 1.0), ("BREAK", BREAK_WEIGHT), ("b", 1.0)]


def test_break_must_be_a_whole_upper_case_word():
    assert parse_attention("aBREAK b") == [("aBREAK b", 1.0)]
    assert parse_attention("a break b") == [("a break b", 1.0)]


def test_break_inside_brackets_is_no_longer_a_marker():
    runs = parse_attention("(a BREAK b)")
    assert runs == [("a", UP), ("BREAK", BREAK_WEIGHT * UP), ("b", UP)]
    assert not any(is_break(text, weight) for text, weight in runs)


def test_leftover_extra_network_tags_are_plain_text():
    assert parse_attention("<lora:foo:0.5> a cat") == [("<lora:foo:0.5> a cat", 1.0)]
    assert parse_attention("(<hypernet:x:1>:1.2)") == [("<hypernet:x:1>", 1.2)]
