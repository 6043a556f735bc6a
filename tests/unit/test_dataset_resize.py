"""A1111's resize steps: crop-and-resize, split into tiles, auto-sized crop."""

from __future__ import annotations

import math

from PIL import Image

from sdapi.dataset.resize import (MulticropBounds, center_crop, crop_and_resize, multicrop, multicrop_size,
                                  split_image, split_ratio)


def _stripes(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    return image


def test_crop_and_resize_covers_the_target_and_centres():
    wide = _stripes(200, 100)
    out = crop_and_resize(wide, 64, 64)
    assert out.size == (64, 64)
    # The centre of a 2:1 image is kept: the red/blue border runs through the middle.
    assert out.getpixel((5, 32))[0] > 200 and out.getpixel((58, 32))[2] > 200
    tall = crop_and_resize(Image.new("RGB", (50, 300), "white"), 64, 32)
    assert tall.size == (64, 32)


def test_split_ratio_measures_against_the_target_aspect():
    assert split_ratio(Image.new("RGB", (64, 256)), 64, 64) == (0.25, False)
    assert split_ratio(Image.new("RGB", (256, 64)), 64, 64) == (0.25, True)
    assert split_ratio(Image.new("RGB", (128, 64)), 128, 64)[0] == 1.0


def test_split_cuts_evenly_spaced_overlapping_tiles():
    tall = Image.new("RGB", (32, 128))
    for y in range(128):
        tall.paste((y * 2, 0, 0), (0, y, 32, y + 1))
    tiles = list(split_image(tall, False, 64, 64, overlap_ratio=0.2))
    # Scaled to 64x256: ceil((256 - 12.8) / 51.2) = 5 tiles, 48 px apart.
    assert len(tiles) == math.ceil((256 - 64 * 0.2) / (64 * 0.8)) == 5
    assert all(tile.size == (64, 64) for tile in tiles)
    tops = [tile.getpixel((32, 0))[0] for tile in tiles]
    assert tops == sorted(tops) and tops[0] < 10
    wide_tiles = list(split_image(Image.new("RGB", (300, 50)), True, 64, 64, overlap_ratio=0.0))
    assert len(wide_tiles) == math.ceil(384 / 64) and {t.size for t in wide_tiles} == {(64, 64)}


def test_multicrop_picks_by_the_objective():
    bounds = MulticropBounds(min_dim=64, max_dim=256, min_area=64 * 64, max_area=256 * 192, threshold=0.1)
    assert multicrop_size(400, 300, bounds) == (256, 192)
    # A square is 25 % off a 4:3 image: the largest area wins it, the smallest error does not.
    loose = dict(min_dim=64, max_dim=256, min_area=64 * 64, max_area=256 * 256, threshold=0.25)
    assert multicrop_size(400, 300, MulticropBounds(**loose)) == (256, 256)
    assert multicrop_size(400, 300, MulticropBounds(**loose, objective="Minimize error")) == (256, 192)
    assert multicrop_size(1000, 100, bounds) is None
    assert multicrop(Image.new("RGB", (1000, 100)), bounds) is None
    assert multicrop(Image.new("RGB", (400, 300)), bounds).size == (256, 192)


def test_center_crop_keeps_the_middle():
    out = center_crop(_stripes(300, 100), 64, 64)
    assert out.size == (64, 64)
    assert out.getpixel((2, 32))[0] > 200 and out.getpixel((61, 32))[2] > 200
