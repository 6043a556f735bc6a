"""An image cut into overlapping tiles and put back together, as A1111 v1.2.1's ``split_grid``/``combine_grid``
do it for SD upscale and Poor man's outpainting.

Tiles are ``tile_w x tile_h``, spread evenly so that the first touches the left/top edge and the last the
right/bottom one; neighbours share at least ``overlap`` pixels. Putting them back, each tile after the first of
its row is blended over the previous one across ``overlap`` pixels with a linear ramp, and each row over the one
above it the same way; the rest of a tile is pasted as is. An image smaller than a tile gives tiles at negative
offsets, padded with black, exactly as A1111's crops are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class Tile:
    """One tile: its left edge and its image (replaced by the processed one)."""

    x: int
    image: Image.Image


@dataclass
class TileRow:
    """One row of tiles: its top edge and its tiles."""

    y: int
    tiles: list[Tile] = field(default_factory=list)


@dataclass
class TileGrid:
    """An image as tiles (A1111's ``Grid``)."""

    rows: list[TileRow]
    tile_w: int
    tile_h: int
    image_w: int
    image_h: int
    overlap: int

    @property
    def columns(self) -> int:
        return len(self.rows[0].tiles) if self.rows else 0

    def tiles(self) -> list[Tile]:
        """Every tile, row by row."""
        return [tile for row in self.rows for tile in row.tiles]


def tile_counts(width: int, height: int, tile_w: int, tile_h: int, overlap: int) -> tuple[int, int]:
    """``(columns, rows)`` of :func:`split_grid` (negative for an image narrower than the overlap: no tiles)."""
    return math.ceil((width - overlap) / (tile_w - overlap)), math.ceil((height - overlap) / (tile_h - overlap))


def _offsets(count: int, size: int, tile: int) -> list[int]:
    """Where the tiles along one side start: evenly spread, the last one flush with the far edge."""
    step = (size - tile) / (count - 1) if count > 1 else 0
    offsets = []
    for index in range(count):
        offset = int(index * step)
        offsets.append(size - tile if offset + tile >= size else offset)
    return offsets


def split_grid(image: Image.Image, tile_w: int, tile_h: int, overlap: int) -> TileGrid:
    """Cut ``image`` into tiles (``overlap`` must be smaller than both tile sides)."""
    columns, rows = tile_counts(image.width, image.height, tile_w, tile_h, overlap)
    grid = TileGrid([], tile_w, tile_h, image.width, image.height, overlap)
    xs = _offsets(columns, image.width, tile_w)
    for y in _offsets(rows, image.height, tile_h):
        grid.rows.append(TileRow(y, [Tile(x, image.crop((x, y, x + tile_w, y + tile_h))) for x in xs]))
    return grid


def _ramp(length: int, overlap: int, horizontal: bool) -> Image.Image:
    """The blend mask across an overlap: 0 to just under 255 in ``overlap`` steps (truncated, as A1111's)."""
    steps = (np.arange(overlap, dtype=np.float32) * 255 / overlap).astype(np.uint8)
    array = np.tile(steps[None, :], (length, 1)) if horizontal else np.tile(steps[:, None], (1, length))
    return Image.fromarray(array, "L")


def combine_grid(grid: TileGrid) -> Image.Image:
    """The tiles put back into one ``image_w x image_h`` image, overlaps blended."""
    overlap = grid.overlap
    combined = Image.new("RGB", (grid.image_w, grid.image_h))
    across = _ramp(grid.tile_h, overlap, True) if overlap else None
    down = _ramp(grid.image_w, overlap, False) if overlap else None
    for row in grid.rows:
        strip = Image.new("RGB", (grid.image_w, grid.tile_h))
        for tile in row.tiles:
            if tile.x == 0:
                strip.paste(tile.image, (0, 0))
                continue
            if across is not None:
                strip.paste(tile.image.crop((0, 0, overlap, grid.tile_h)), (tile.x, 0), mask=across)
            strip.paste(tile.image.crop((overlap, 0, grid.tile_w, grid.tile_h)), (tile.x + overlap, 0))
        if row.y == 0:
            combined.paste(strip, (0, 0))
            continue
        if down is not None:
            combined.paste(strip.crop((0, 0, strip.width, overlap)), (0, row.y), mask=down)
        combined.paste(strip.crop((0, overlap, strip.width, grid.tile_h)), (0, row.y + overlap))
    return combined
