"""X/Y/Z plot grid images: A1111 v1.2.1's legend geometry with the bundled font, margins, sub-grids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdapi.scripts.xyz.grid import FONT_PATH, annotate_grid, load_font, plot_grids
from sdapi.translate import image_grid
from tests.conftest import SHARED


def cells(count: int, size=(64, 64)) -> list[Image.Image]:
    """Distinct flat-coloured cells (no white, so legends and cells are told apart)."""
    return [Image.new("RGB", size, (10 + 20 * i, 200 - 15 * i, 60)) for i in range(count)]


def ink(image: Image.Image, box) -> int:
    """Pixels that are not white inside ``box``."""
    region = np.asarray(image.crop(box).convert("RGB"), dtype=int)
    return int((region.sum(axis=2) < 765).sum())


def test_the_font_is_bundled_with_its_licence():
    assert FONT_PATH.is_file() and (FONT_PATH.parent / "LICENSE-Roboto.txt").is_file()
    assert load_font(12).getname() == ("Roboto", "Regular")


def test_recorded_prompt_sr_grid_size():
    # A1111's 2x2 Prompt S/R grid of 64x64 cells is 176x137: a 48 px label column (3/4 of a cell) and a 9 px
    # label row (the 5 px font's tallest label, "dog", plus 2 px above and below).
    grid = annotate_grid(image_grid(cells(4), rows=2), 64, 64, ["cat", "dog"], ["table", "chair"])
    assert grid.size == (176, 137)


def test_legend_pixels_match_a1111s_recorded_grid():
    recorded = SHARED / "fixtures/a1111-v1.2.1/images/post-txt2img-xyz-prompt-sr-0.png"
    if not recorded.exists():
        pytest.skip("shared fixtures not mounted")
    theirs = np.asarray(Image.open(recorded).convert("RGB"), dtype=int)
    ours = np.asarray(annotate_grid(image_grid(cells(4), rows=2), 64, 64, ["cat", "dog"], ["table", "chair"]),
                      dtype=int)
    for band in (np.s_[:9, :], np.s_[:, :48]):  # the label bands: same text, same places
        dark_theirs, dark_ours = theirs[band].sum(axis=2) < 600, ours[band].sum(axis=2) < 600
        assert dark_theirs.sum() > 20
        assert (dark_theirs != dark_ours).sum() <= 0.1 * dark_theirs.sum()  # antialiasing of another Pillow


def test_cells_keep_their_place_and_margins_spread_them():
    parts = cells(6)
    grid = annotate_grid(image_grid(parts, rows=2), 64, 64, ["a", "b", "c"], ["d", "e"], margin=10)
    pad_left, pad_top = 48, grid.height - 2 * 64 - 10
    assert grid.size == (48 + 3 * 64 + 2 * 10, pad_top + 2 * 64 + 10)
    for i, part in enumerate(parts):
        col, row = i % 3, i // 3
        x, y = pad_left + col * (64 + 10), pad_top + row * (64 + 10)
        assert np.array_equal(np.asarray(grid.crop((x, y, x + 64, y + 64))), np.asarray(part))
    assert ink(grid, (pad_left + 64, pad_top, pad_left + 74, grid.height)) == 0  # the margin is white


def test_labels_are_drawn_over_their_own_column_and_row():
    grid = annotate_grid(image_grid(cells(2), rows=1), 64, 64, ["wide label here", ""], ["row"])
    pad_top = grid.height - 64
    assert ink(grid, (48, 0, 48 + 64, pad_top)) > 0
    assert ink(grid, (48 + 64, 0, 48 + 128, pad_top)) == 0  # the empty label draws nothing
    assert ink(grid, (0, pad_top, 48, grid.height)) > 0


def test_empty_labels_add_no_bands():
    grid = image_grid(cells(4), rows=2)
    annotated = annotate_grid(grid, 64, 64, ["", ""], ["", ""])
    assert annotated.size == grid.size
    assert np.array_equal(np.asarray(annotated), np.asarray(grid))


def test_long_labels_wrap_inside_their_column():
    one_line = annotate_grid(image_grid(cells(1), rows=1), 64, 64, ["short"], [""])
    wrapped = annotate_grid(image_grid(cells(1), rows=1), 64, 64, ["a much longer label that wraps"], [""])
    assert wrapped.height > one_line.height and wrapped.width == one_line.width == 64


def test_sub_grids_side_by_side_under_their_z_labels():
    parts = cells(8)
    main, subs = plot_grids(parts, ["x1", "x2"], ["y1", "y2"], ["z1", "z2"], draw_legend=True, margin=2)
    assert len(subs) == 2 and subs[0].size == subs[1].size
    sub_w, sub_h = subs[0].size
    assert (sub_w, sub_h) == (48 + 2 * 64 + 2, sub_h) and main.width == 2 * sub_w
    z_band = main.height - sub_h
    assert z_band > 0
    for iz, sub in enumerate(subs):
        placed = main.crop((iz * sub_w, z_band, (iz + 1) * sub_w, main.height))
        assert np.array_equal(np.asarray(placed), np.asarray(sub))


def test_no_legend_is_the_plain_grid():
    parts = cells(4)
    main, subs = plot_grids(parts, ["x1", "x2"], ["y1"], ["z1", "z2"], draw_legend=False, margin=8)
    assert main.size == (4 * 64, 64) and subs[0].size == (128, 64)  # margins come with legends only (A1111)
    assert np.array_equal(np.asarray(main.crop((128, 0, 192, 64))), np.asarray(parts[2]))


def test_a_missing_font_option_falls_back_to_the_bundled_font(tmp_path):
    fallback = annotate_grid(image_grid(cells(2), rows=1), 64, 64, ["a", "b"], ["c"], font_file=str(tmp_path / "x"))
    default = annotate_grid(image_grid(cells(2), rows=1), 64, 64, ["a", "b"], ["c"])
    assert np.array_equal(np.asarray(fallback), np.asarray(default))


def test_tiny_cells_still_get_a_legend():
    grid = annotate_grid(image_grid(cells(2, (8, 8)), rows=1), 8, 8, ["a", "b"], ["c"])  # font size 0 → 1
    assert grid.size[0] == 6 + 16
