"""One image saved as A1111 v1.2.1's ``images.save_image`` saves it: into a dated (or patterned) sub-folder, under
a sequence-numbered name from the filename pattern, with its infotext, a ``.txt`` beside it (``save_txt``) and a
downscaled JPEG copy when it is too big (``export_for_4chan``).

The folder it is given has passed the path guard; what the patterns add to it is checked again here, so a
literal ``..`` or an absolute path in a pattern cannot leave the allowed roots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sdapi.dataset.paths import PathGuard, PathNotAllowed
from sdapi.files import write_atomically, write_text_atomically
from sdapi.images import write_image_file
from sdapi.options import Options
from sdapi.saving.filenames import NamingContext, apply_pattern

# A1111 gives up looking for a free number after this many tries (it then overwrites the last one).
NUMBER_TRIES = 500
# File name length limit where the file system does not say (statvfs's f_namemax on Linux is 255).
DEFAULT_NAME_MAX = 255


@dataclass
class ImageToSave:
    """One image and how A1111 would call ``save_image`` for it.

    Args:
        folder: the output folder as the option names it (``outputs/txt2img-images``).
        basename: ``""`` for samples (``00000-…``), ``"grid"``/``"xyz_grid"`` for grids (``grid-0000``).
        extension: the ``samples_format``/``grid_format`` option.
        infotext: stored in the file (``None``: nothing).
        short_filename: no pattern part, just the number (grids without ``grid_extended_filename``).
        grid: grids use ``grid_save_to_dirs`` instead of ``save_to_dirs``.
    """

    image: Image.Image
    folder: str
    basename: str
    extension: str
    context: NamingContext
    infotext: str | None = None
    short_filename: bool = False
    grid: bool = False


def next_sequence_number(folder: Path, basename: str) -> int:
    """A1111's ``get_next_sequence_number``: one more than the largest leading number among the names starting
    with ``basename-`` (any name when ``basename`` is empty), 0 for none."""
    prefix = f"{basename}-" if basename else ""
    largest = -1
    for name in os.listdir(folder):
        if name.startswith(prefix):
            first = os.path.splitext(name[len(prefix):])[0].split("-")[0]
            try:
                largest = max(int(first), largest)
            except ValueError:
                pass
    return largest + 1


def _name_max(folder: Path) -> int:
    try:
        return os.statvfs(folder).f_namemax
    except (AttributeError, OSError):  # no statvfs on Windows
        return DEFAULT_NAME_MAX


def _inside(guard: PathGuard, folder: Path, relative: str, shown: str) -> Path:
    """``folder / relative`` (a pattern's output), refused if it climbs out with ``..`` or leaves the roots."""
    if ".." in Path(relative).parts:
        raise PathNotAllowed(f"Path {shown} is not allowed: '..' components are refused")
    return guard.check_output(folder / relative, shown=shown)


def _decoration(item: ImageToSave, options: Options) -> tuple[str, bool]:
    """The patterned part of the file name and whether a sequence number comes before it."""
    if item.short_filename or item.context.seed is None:
        pattern = ""
    elif options.get("save_to_dirs"):  # A1111 reads the samples' option here even for a grid
        pattern = options.get("samples_filename_pattern") or "[seed]"
    else:
        pattern = options.get("samples_filename_pattern") or "[seed]-[prompt_spaces]"
    add_number = bool(options.get("save_images_add_number")) or pattern == ""
    if pattern and add_number:
        pattern = f"-{pattern}"
    return apply_pattern(pattern, item.context), add_number


def save_image(item: ImageToSave, folder: Path, guard: PathGuard, options: Options) -> Path:
    """Save ``item`` under ``folder`` (already resolved and confined); returns the file written.

    Raises:
        PathNotAllowed: a pattern leads outside the allowed roots.
        OSError, ValueError: the file could not be written.
    """
    shown = item.folder
    save_to_dirs = options.get("grid_save_to_dirs") if item.grid else options.get("save_to_dirs")
    if save_to_dirs:
        pattern = options.get("directories_filename_pattern") or "[prompt_words]"
        subfolder = apply_pattern(pattern, item.context).lstrip(" ").rstrip("\\ /")
        shown = os.path.join(item.folder, subfolder)
        folder = _inside(guard, folder, subfolder, shown)
    folder.mkdir(parents=True, exist_ok=True)
    decoration, add_number = _decoration(item, options)
    extension = f".{item.extension}"
    if add_number:
        start = next_sequence_number(folder, item.basename)
        for i in range(NUMBER_TRIES):
            number = f"{start + i:05}" if not item.basename else f"{item.basename}-{start + i:04}"
            stem = f"{number}{decoration}"
            if not (folder / f"{stem}{extension}").exists():
                break
    else:
        stem = decoration
    stem = _shortened(stem, shown, extension, _name_max(folder))
    target = _inside(guard, folder, f"{stem}{extension}", os.path.join(shown, f"{stem}{extension}"))
    _write(item, target, item.extension, options)
    if options.get("export_for_4chan") and _too_big(item.image, target, options):
        _write_downscaled(item, target.with_suffix(".jpg"), options)
    if options.get("save_txt") and item.infotext is not None:
        write_text_atomically(target.with_suffix(".txt"), f"{item.infotext}\n")
    return target


def _shortened(stem: str, shown_folder: str, extension: str, name_max: int) -> str:
    """A1111 cuts the path it writes (the option's folder, sub-folder and name) to the file system's name limit
    less the extension; the cut is made in the name only, never in the folders, and the name always fits."""
    limit = name_max - max(4, len(extension))
    excess = len(os.path.join(shown_folder, stem)) - limit
    if excess > 0:
        stem = stem[:max(1, len(stem) - excess)]
    return stem[:name_max - len(extension)]


def _write(item: ImageToSave, target: Path, fmt: str, options: Options, image: Image.Image | None = None) -> None:
    infotext = item.infotext if options.get("enable_pnginfo") else None
    write_atomically(target, lambda out: write_image_file(
        out, image or item.image, fmt, infotext, int(options.get("jpeg_quality")), bool(options.get("webp_lossless"))))


def _too_big(image: Image.Image, target: Path, options: Options) -> bool:
    side = options.get("target_side_length")
    oversize = image.width > side or image.height > side
    return oversize or target.stat().st_size > options.get("img_downscale_threshold") * 1024 * 1024


def _write_downscaled(item: ImageToSave, target: Path, options: Options) -> None:
    """``export_for_4chan``: a JPEG copy, its longer side brought down to ``target_side_length`` if beyond it."""
    image, side = item.image, options.get("target_side_length")
    if image.width > side or image.height > side:
        if image.width > image.height:
            size = (round(side), round(image.height * side / image.width))
        else:
            size = (round(image.width * side / image.height), round(side))
        image = image.resize(size, Image.LANCZOS)
    _write(item, target, "jpg", options, image)
