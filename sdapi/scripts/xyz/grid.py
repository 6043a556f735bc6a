"""The X/Y/Z plot's grid images: cells pasted in rows, legends drawn around them as A1111's
``draw_grid_annotations`` draws them.

Geometry follows A1111 v1.2.1: font size ``(cell_w + cell_h) // 25``, line spacing half of it, a left band of
3/4 of a cell width for the row labels (none if they are all empty), a top band as high as the tallest column
label plus a line spacing above and below (none if they are all empty), ``margin`` pixels between cells, white
background, labels centred and wrapped at word boundaries to the space they have, a label still too wide drawn in
a smaller font. A label may be several annotations, each wrapped on its own; an inactive one (the prompt matrix's
parts left out of a cell) is grey and struck through. The font is A1111's Roboto, bundled (``sdapi/data/fonts``), so text measures as in A1111 and grid
sizes match; the ``font`` option may name another TrueType file, as in A1111.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from PIL import Image, ImageDraw, ImageFont

from sdapi.translate import image_grid

FONT_PATH = Path(__file__).resolve().parents[2] / "data" / "fonts" / "Roboto-Regular.ttf"
TEXT_COLOR = (0, 0, 0)
INACTIVE_COLOR = (153, 153, 153)
STRIKE_WIDTH = 4


@dataclass(frozen=True)
class Annotation:
    """One piece of a label (A1111's ``GridAnnotation``): its text and whether it is drawn as active."""

    text: str
    active: bool = True


# A label: plain text, or annotations stacked one under the other.
Label = Union[str, Sequence[Annotation]]


@dataclass
class LabelLine:
    """One line of a label, measured with the legend font.

    Args:
        text: the words on the line.
        width, height: its ink box.
        allowed_width: the space it is centred in.
        active: drawn black (else grey and struck through).
    """

    text: str
    width: int
    height: int
    allowed_width: int
    active: bool = True


def annotations(label: Label) -> list[Annotation]:
    """A label as its annotations (plain text is one active annotation)."""
    return [Annotation(label)] if isinstance(label, str) else list(label)


def load_font(size: int, font_file: str = "") -> ImageFont.FreeTypeFont:
    """The legend font at ``size`` pixels: ``font_file`` when it loads, else the bundled Roboto."""
    size = max(1, size)  # Pillow refuses 0, which tiny cells would ask for
    try:
        return ImageFont.truetype(font_file or str(FONT_PATH), size)
    except OSError:
        return ImageFont.truetype(str(FONT_PATH), size)


def wrap_words(draw: ImageDraw.ImageDraw, text: str, font, max_width: float) -> list[str]:
    """Greedy word wrap: a word joins the line while the line stays within ``max_width``."""
    lines = [""]
    for word in text.split():
        candidate = f"{lines[-1]} {word}".strip()
        if draw.textlength(candidate, font=font) <= max_width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def measured_lines(draw: ImageDraw.ImageDraw, label: Label, font, allowed_width: int) -> list[LabelLine]:
    """A label's annotations each wrapped to ``allowed_width``, each line with its ink size."""
    lines = []
    for annotation in annotations(label):
        for text in wrap_words(draw, annotation.text, font, allowed_width):
            left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
            lines.append(LabelLine(text, right - left, bottom - top, allowed_width, annotation.active))
    return lines


def draw_lines(draw: ImageDraw.ImageDraw, x: float, y: float, lines: list[LabelLine], font, font_size: int,
               font_file: str, line_spacing: int) -> None:
    """Draw a label's lines centred on ``x`` from ``y`` down, shrinking the font of a line that does not fit."""
    for line in lines:
        line_font, size = font, font_size
        while draw.multiline_textbbox((0, 0), line.text, font=line_font)[2] > line.allowed_width and size > 1:
            size -= 1
            line_font = load_font(size, font_file)
        color = TEXT_COLOR if line.active else INACTIVE_COLOR
        draw.multiline_text((x, y + line.height / 2), line.text, font=line_font, fill=color, anchor="mm",
                            align="center")
        if not line.active:
            middle = y + line.height // 2
            draw.line((x - line.width // 2, middle, x + line.width // 2, middle), fill=INACTIVE_COLOR,
                      width=STRIKE_WIDTH)
        y += line.height + line_spacing


def annotate_grid(grid: Image.Image, cell_width: int, cell_height: int, column_labels: Sequence[Label],
                  row_labels: Sequence[Label], margin: int = 0, font_file: str = "") -> Image.Image:
    """A new image: ``grid``'s cells spread by ``margin``, column labels above, row labels to the left.

    Args:
        grid: cells of ``cell_width x cell_height``, ``len(column_labels)`` across and ``len(row_labels)`` down.
        margin: pixels between cells.
        font_file: A1111's ``font`` option (empty: the bundled Roboto).
    """
    font_size = (cell_width + cell_height) // 25
    line_spacing = font_size // 2
    font = load_font(font_size, font_file)
    cols, rows = grid.width // cell_width, grid.height // cell_height
    assert cols == len(column_labels), f"bad number of horizontal texts: {len(column_labels)}; must be {cols}"
    assert rows == len(row_labels), f"bad number of vertical texts: {len(row_labels)}; must be {rows}"
    pad_left = 0 if not any(a.text for label in row_labels for a in annotations(label)) else cell_width * 3 // 4
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1), "white"))
    columns = [measured_lines(measure, label, font, cell_width) for label in column_labels]
    row_lines = [measured_lines(measure, label, font, pad_left) for label in row_labels]
    column_heights = [sum(line.height + line_spacing for line in lines) - line_spacing for lines in columns]
    # Row labels are centred on their ink alone (A1111 leaves the spacing out of this sum).
    row_heights = [sum(line.height for line in lines) for lines in row_lines]
    pad_top = 0 if sum(column_heights) == 0 else max(column_heights) + line_spacing * 2

    result = Image.new("RGB", (grid.width + pad_left + margin * (cols - 1),
                               grid.height + pad_top + margin * (rows - 1)), "white")
    for row in range(rows):
        for col in range(cols):
            cell = grid.crop((cell_width * col, cell_height * row, cell_width * (col + 1), cell_height * (row + 1)))
            result.paste(cell, (pad_left + (cell_width + margin) * col, pad_top + (cell_height + margin) * row))
    draw = ImageDraw.Draw(result)
    for col, lines in enumerate(columns):
        x = pad_left + (cell_width + margin) * col + cell_width / 2
        draw_lines(draw, x, pad_top / 2 - column_heights[col] / 2, lines, font, font_size, font_file, line_spacing)
    for row, lines in enumerate(row_lines):
        y = pad_top + (cell_height + margin) * row + cell_height / 2 - row_heights[row] / 2
        draw_lines(draw, pad_left / 2, y, lines, font, font_size, font_file, line_spacing)
    return result


def plot_grids(cells: list[Image.Image], x_labels: list[str], y_labels: list[str], z_labels: list[str],
               draw_legend: bool, margin: int, font_file: str = "") -> tuple[Image.Image, list[Image.Image]]:
    """The main grid and one sub-grid per Z value.

    Args:
        cells: in grid order (x fastest, then y, then z), all of one size.
        x_labels, y_labels, z_labels: the legends (used when ``draw_legend``).
        margin: pixels between the cells of a sub-grid (the sub-grids themselves touch).

    Returns:
        ``(main grid, sub-grids)``: the sub-grids side by side with the Z labels above them make the main grid.
    """
    per_grid = len(x_labels) * len(y_labels)
    sub_grids = []
    for iz in range(len(z_labels)):
        chunk = cells[iz * per_grid:(iz + 1) * per_grid]
        grid = image_grid(chunk, rows=len(y_labels))
        if draw_legend:
            width, height = chunk[0].size
            grid = annotate_grid(grid, width, height, x_labels, y_labels, margin, font_file)
        sub_grids.append(grid)
    main = image_grid(sub_grids, rows=1)
    if draw_legend:
        width, height = sub_grids[0].size
        main = annotate_grid(main, width, height, z_labels, [""], 0, font_file)
    return main, sub_grids
