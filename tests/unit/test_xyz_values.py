"""X/Y/Z plot values, axis table, arguments and cell order: pure functions, checked against A1111 v1.2.1's rules."""

from __future__ import annotations

import pytest

from sdapi.errors import InvalidRequest
from sdapi.scripts.xyz.args import plot_args
from sdapi.scripts.xyz.axes import IMG2IMG, TXT2IMG, axis_labels, format_label
from sdapi.scripts.xyz.plan import Axis, find_axis_type, run_order
from sdapi.scripts.xyz.values import ValueKind, axis_values, count_values, join_values, split_values


def values(kind: ValueKind, text: str) -> list:
    return axis_values(kind, split_values(text))


@pytest.mark.parametrize("text, expected", [
    ("1-5", [1, 2, 3, 4, 5]),
    (" 3 - 6 ", [3, 4, 5, 6]),
    ("1-10 (+2)", [1, 3, 5, 7, 9]),
    ("1-10 (+3)", [1, 4, 7, 10]),
    ("10-1 (-3)", [10, 7, 4]),  # the end is b + 1 whatever the sign: A1111 stops before 1
    ("5-1", []),  # a backwards range without a negative step is empty
    ("1-10 [4]", [1, 4, 7, 10]),
    ("0-10 [3]", [0, 5, 10]),
    ("1-2 [4]", [1, 1, 1, 2]),  # linspace values truncated by int()
    ("1-3, 7, 20-22", [1, 2, 3, 7, 20, 21, 22]),
    ("-1", [-1]),
    ("5", [5]),
    ("1-10 (2)", None),  # the step needs its sign: not a range, and "1-10 (2)" is no int
])
def test_int_ranges(text, expected):
    if expected is None:
        with pytest.raises(ValueError, match="is not an integer"):
            values(ValueKind.INT, text)
    else:
        assert values(ValueKind.INT, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("1-3", [1.0, 2.0, 3.0]),
    ("0-1 (+0.25)", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("0-1 [5]", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("1.5-2.5 [3]", [1.5, 2.0, 2.5]),
    ("7.5", [7.5]),
    ("3, 7.5, 9", [3.0, 7.5, 9.0]),
    # numpy.arange(a, b + step, step): A1111 keeps the float overshoot, and so one value too many
    ("0.1-0.3 (+0.1)", [0.1, 0.2, 0.30000000000000004, 0.4]),
])
def test_float_ranges(text, expected):
    assert values(ValueKind.FLOAT, text) == expected


@pytest.mark.parametrize("kind, text, message", [
    (ValueKind.INT, "abc", "'abc' is not an integer"),
    (ValueKind.INT, "3.5", "'3.5' is not an integer"),
    (ValueKind.FLOAT, "x", "'x' is not a number"),
])
def test_unreadable_values(kind, text, message):
    with pytest.raises(ValueError, match=message):
        values(kind, text)


@pytest.mark.parametrize("text, expected", [
    ("cat, dog", ["cat", "dog"]),
    ('"a, b", c', ["a, b", "c"]),
    ("a,,b", ["a", "b"]),
    ("a, ,b", ["a", "", "b"]),  # A1111 tests the item before stripping it
    ("a\nb, c", ["a", "b", "c"]),
    ("", []),
])
def test_text_values_are_csv(text, expected):
    assert split_values(text) == expected


def test_join_values_round_trips_through_the_csv_reader():
    items = ["a, b", "c", 'say "hi"']
    assert split_values(join_values(items)) == items


def test_prompt_order_gives_every_permutation():
    orders = values(ValueKind.PERMUTATIONS, "a, b, c")
    assert len(orders) == 6 and orders[0] == ("a", "b", "c") and orders[-1] == ("c", "b", "a")


@pytest.mark.parametrize("mode, index, label", [
    (TXT2IMG, 0, "Nothing"), (TXT2IMG, 1, "Seed"), (TXT2IMG, 5, "Hires steps"), (TXT2IMG, 6, "CFG Scale"),
    (TXT2IMG, 7, "Prompt S/R"), (TXT2IMG, 9, "Sampler"), (TXT2IMG, 10, "Checkpoint name"),
    (TXT2IMG, 17, "Clip skip"), (TXT2IMG, 19, "Hires upscaler"), (TXT2IMG, 23, "Face restore"),
    (IMG2IMG, 5, "CFG Scale"), (IMG2IMG, 6, "Image CFG Scale"), (IMG2IMG, 7, "Prompt S/R"),
    (IMG2IMG, 19, "Cond. Image Mask Weight"), (IMG2IMG, 23, "Face restore"),
])
def test_axis_indexes_are_a1111_v121s(mode, index, label):
    assert axis_labels(mode)[index] == label
    assert find_axis_type("X", index, mode).label == label
    assert find_axis_type("X", label.upper(), mode).label == label


def test_both_lists_have_24_axes():
    assert len(axis_labels(TXT2IMG)) == len(axis_labels(IMG2IMG)) == 24


@pytest.mark.parametrize("requested, message", [(24, "x_type: 24 is not an axis"), (-1, "x_type: -1"),
                                                ("Hires steps", "no img2img axis is called 'Hires steps'")])
def test_unknown_axis_is_refused(requested, message):
    with pytest.raises(InvalidRequest, match=message):
        find_axis_type("X", requested, IMG2IMG)


@pytest.mark.parametrize("label, value, text", [
    ("Steps", 20, "Steps: 20"),
    ("CFG Scale", 0.30000000000000004, "CFG Scale: 0.3"),
    ("Var. strength", 0.5, "Var. strength: 0.5"),
    ("Prompt S/R", "dog", "dog"),
    ("Sampler", "k_lms", "k_lms"),
    ("Checkpoint name", "demo-sd15", "demo-sd15"),
    ("Prompt order", ("b", "a"), "b, a"),
    ("Nothing", 0, ""),
])
def test_legend_text(label, value, text):
    assert format_label(find_axis_type("X", label, TXT2IMG), value) == text


def _axis(letter: str, label: str, count: int) -> Axis:
    return Axis(letter, find_axis_type(letter, label, TXT2IMG), list(range(count)), "")


def test_cells_run_z_then_y_then_x_without_costly_axes():
    axes = [_axis("X", "Steps", 2), _axis("Y", "Seed", 2), _axis("Z", "Nothing", 1)]
    assert run_order(axes) == [0, 1, 2, 3]


def test_the_checkpoint_axis_is_iterated_outermost():
    # X = checkpoint (cost 1): for each checkpoint every Y value, so the model switches once per X value.
    axes = [_axis("X", "Checkpoint name", 2), _axis("Y", "Steps", 3), _axis("Z", "Nothing", 1)]
    assert run_order(axes) == [0, 2, 4, 1, 3, 5]


def test_the_two_costly_axes_come_first_in_cost_order():
    axes = [_axis("X", "Steps", 2), _axis("Y", "UniPC Order", 2), _axis("Z", "Checkpoint name", 2)]
    order = run_order(axes)
    assert order == [0, 1, 2, 3, 4, 5, 6, 7]  # z (1.0), then y (0.5), then x
    axes = [_axis("X", "Checkpoint name", 2), _axis("Y", "Steps", 2), _axis("Z", "VAE", 2)]
    assert run_order(axes) == [0, 2, 4, 6, 1, 3, 5, 7]  # x outermost, then z (0.7), y innermost


# -- script_args -------------------------------------------------------------------------------------------

WEBUIAPI_ARGS = [4, "20,30", "", 9, "Euler a, LMS", "", 0, "", "", "True", "False", "False", "False", 0]


def test_positional_args_keep_a1111s_order():
    args = plot_args([7, "cat, dog", [], 9, "", ["Euler"], 0, "", [], False, True, True, True, 4])
    assert (args.x.type, args.x.values, args.x.dropdown) == (7, "cat, dog", [])
    assert (args.y.type, args.y.dropdown) == (9, ["Euler"])
    assert not args.draw_legend and args.include_lone_images and args.include_sub_grids and args.no_fixed_seeds
    assert args.margin_size == 4


def test_webuiapi_strings_are_read_as_meant():
    args = plot_args(WEBUIAPI_ARGS)
    assert args.draw_legend and not args.include_lone_images and not args.no_fixed_seeds
    assert args.x.dropdown == [] and args.y.values == "Euler a, LMS"


@pytest.mark.parametrize("script_args, message", [
    ([7, "cat, dog", 7, "table, chair", 0, "", True, False, False, False, 0], "must hold 14 values"),
    ([], "got 0"),
    ([7, ["a"], [], 0, "", [], 0, "", [], True, False, False, False, 0], "x_values must be text"),
    ([7, "a", "b", 0, "", [], 0, "", [], True, False, False, False, 0], "x_values_dropdown must be a list"),
    ([7, "a", [], 0, "", [], 0, "", [], "maybe", False, False, False, 0], "draw_legend"),
    ([7, "a", [], 0, "", [], 0, "", [], True, False, False, False, -2], "margin_size must be 0 or more"),
    ({"x_type": "Steps", "x_vals": "1-3"}, "x_vals: Extra inputs are not permitted"),
    ({"margin_size": -1}, "margin_size"),
])
def test_malformed_args_name_the_argument(script_args, message):
    with pytest.raises(InvalidRequest, match=message):
        plot_args(script_args)


def test_named_args_take_labels_and_lists():
    args = plot_args({"x_type": "Prompt S/R", "x_values": ["cat", "dog"], "y_type": 4, "y_values": "1-3"})
    assert (args.x.type, args.x.values) == ("Prompt S/R", ["cat", "dog"])
    assert (args.y.type, args.z.type) == (4, "Nothing")
    assert args.draw_legend and not args.include_lone_images and args.margin_size == 0


@pytest.mark.parametrize("kind, text", [
    (ValueKind.INT, "1-5"), (ValueKind.INT, " 3 - 6 "), (ValueKind.INT, "1-10 (+2)"), (ValueKind.INT, "1-10 (+3)"),
    (ValueKind.INT, "10-1 (-3)"), (ValueKind.INT, "5-1"), (ValueKind.INT, "1-10 [4]"), (ValueKind.INT, "0-10 [3]"),
    (ValueKind.INT, "1-2 [4]"), (ValueKind.INT, "1-3, 7, 20-22"), (ValueKind.INT, "-1"), (ValueKind.INT, "0-5 [0]"),
    (ValueKind.INT, "-5--1"), (ValueKind.INT, "-1-3 (+2)"), (ValueKind.INT, "100-1 (-7)"),
    (ValueKind.FLOAT, "1-3"), (ValueKind.FLOAT, "0-1 (+0.25)"), (ValueKind.FLOAT, "0-1 [5]"),
    (ValueKind.FLOAT, "1.5-2.5 [3]"), (ValueKind.FLOAT, "7.5"), (ValueKind.FLOAT, "3, 7.5, 9"),
    (ValueKind.FLOAT, "0.1-0.3 (+0.1)"), (ValueKind.FLOAT, "0-1 (+0.1)"), (ValueKind.FLOAT, "0-2.05 (+0.15)"),
    (ValueKind.FLOAT, "3-1 (-0.3)"), (ValueKind.FLOAT, "2-1"), (ValueKind.FLOAT, "0.5-7.25 (+0.05)"),
    (ValueKind.TEXT, "cat, dog, \"a, b\""), (ValueKind.PERMUTATIONS, "a, b, c, d"),
])
def test_counting_agrees_with_expanding(kind, text):
    assert count_values(kind, split_values(text), 10_000) == len(values(kind, text))


@pytest.mark.parametrize("kind, text", [
    (ValueKind.INT, "1-1000000000 (+1)"), (ValueKind.INT, "1-2 [1000000000]"), (ValueKind.INT, "1-20000000"),
    (ValueKind.INT, "1-5, 1-999999999999"), (ValueKind.FLOAT, "0-1 (+0.000000001)"),
    (ValueKind.FLOAT, "0-1 [99999999999]"), (ValueKind.PERMUTATIONS, ", ".join(f"t{i}" for i in range(300))),
])
def test_huge_ranges_are_counted_without_being_expanded(kind, text):
    assert count_values(kind, split_values(text), 10_000) > 10_000


@pytest.mark.parametrize("kind, text", [(ValueKind.INT, "abc"), (ValueKind.INT, "1-10 (+0)"),
                                        (ValueKind.FLOAT, "1-2 [2.5]")])
def test_unreadable_items_count_as_one_and_fail_when_expanded(kind, text):
    assert count_values(kind, split_values(text), 10_000) == 1
    with pytest.raises(ValueError):
        values(kind, text)
