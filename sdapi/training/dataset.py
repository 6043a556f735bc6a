"""Scanning a training folder the way kohya's DreamBooth-style datasets read it, without moving any file.

``train_data_dir/10_aki/x.png`` + ``x.txt``: 10 repeats, class tokens ``aki``, caption = the first line of the
caption file (the class tokens when there is none). A folder with images and no ``N_name`` subfolder is one
subset whose repeats come from the request (lora-scripts would move the files into ``N_zkz``; we never do).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sdapi.dataset.paths import PathGuard
from sdapi.engine.training.plan import ImageItem, Subset
from sdapi.training.errors import ConfigError, refused_as

log = logging.getLogger("sdapi")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
REPEAT_FOLDER = re.compile(r"^(\d+)_(.*)$")
# lora-scripts' repeats for a flat folder, by image count: (at most this many images, repeats).
FLAT_REPEATS = ((10, 7), (50, 5), (100, 3))
# Only a caption's first line is used; a huge file is not read whole into memory for it.
MAX_CAPTION_CHARS = 64 * 1024


def flat_folder_repeats(count: int) -> int:
    """lora-scripts' heuristic for a flat folder: 7 repeats up to 10 images, 5 to 50, 3 to 100, else 1."""
    for most, repeats in FLAT_REPEATS:
        if count <= most:
            return repeats
    return 1


def checked_file(path: Path, guard: PathGuard, field_name: str) -> Path:
    """The real location of a file the job will read, which must lie inside the allowed folders.

    Raises:
        ConfigError: naming ``field_name``: a symlink out of the allowed folders, or a symlink loop.
    """
    with refused_as(field_name):
        return guard.check(path)


def read_caption(image: Path, extension: str, fallback: str, guard: PathGuard, field_name: str) -> str:
    """The first line of ``<image stem><extension>``, or ``fallback`` when missing or empty.

    Raises:
        ConfigError: the caption file leaves the allowed folders, or cannot be read.
    """
    caption_file = image.with_name(image.stem + extension)
    if not os.path.lexists(caption_file):
        return fallback
    real = checked_file(caption_file, guard, field_name)
    if not real.is_file():
        return fallback
    try:
        with open(real, encoding="utf-8", errors="replace") as f:
            lines = f.read(MAX_CAPTION_CHARS).splitlines()
    except OSError as exc:
        raise ConfigError(field_name, f"{guard.shown(caption_file)} cannot be read ({exc.strerror})") from exc
    return (lines[0].strip() if lines else "") or fallback


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_image_item(path: Path, caption: str, guard: PathGuard, field_name: str) -> ImageItem:
    """Open an image's header and check it decodes.

    Returns:
        The image, by its real location (what the trainer opens is what was checked).

    Raises:
        ConfigError: the file is outside the allowed folders or not a readable image.
    """
    real = checked_file(path, guard, field_name)
    try:
        with Image.open(real) as image:
            width, height = image.size
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        # PIL's messages name the full path; the client gets the path as it knows it.
        raise ConfigError(field_name, f"{guard.shown(path)} is not a readable image") from exc
    return ImageItem(path=real, caption=caption, width=width, height=height)


def scan_subset(folder: Path, name: str, repeats: int, class_tokens: str, extension: str, guard: PathGuard,
                field_name: str, is_reg: bool) -> Subset:
    """Read one folder's images and captions."""
    subset = Subset(name=name, path=folder, repeats=repeats, class_tokens=class_tokens, is_reg=is_reg)
    for image in image_files(folder):
        caption = read_caption(image, extension, class_tokens, guard, field_name)
        subset.images.append(read_image_item(image, caption, guard, field_name))
    return subset


def scan_dataset(root: Path, *, extension: str, guard: PathGuard, field_name: str, repeats: int | None,
                 class_tokens: str, is_reg: bool = False) -> list[Subset]:
    """Every subset of a training (or regularisation) folder.

    Args:
        root: the resolved ``train_data_dir`` / ``reg_data_dir``.
        extension: caption file extension (``.txt``).
        guard: confines the images and captions (a symlink out of the allowed folders is refused).
        field_name: the request field, for errors.
        repeats: repeats of a flat folder (``None``: lora-scripts' heuristic).
        class_tokens: caption of uncaptioned images in a flat folder.
        is_reg: mark the subsets as regularisation images.

    Returns:
        The subsets with at least one image, in folder-name order.

    Raises:
        ConfigError: no folder, no images, or an unreadable image.
    """
    if not root.is_dir():
        raise ConfigError(field_name, f"{guard.shown(root)} is not a folder")
    subsets = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        match = REPEAT_FOLDER.match(folder.name)
        if match is None:
            log.warning("Training folder %s ignored: its name does not start with '<repeats>_'", folder)
            continue
        subset = scan_subset(folder, folder.name, int(match.group(1)), match.group(2), extension, guard,
                             field_name, is_reg)
        if subset.images and subset.repeats > 0:
            subsets.append(subset)
    if not subsets:
        flat = image_files(root)
        if not flat:
            raise ConfigError(field_name, f"{guard.shown(root)} has no images and no '<repeats>_<name>' folder "
                                          f"with images")
        count = repeats or flat_folder_repeats(len(flat))
        subsets.append(scan_subset(root, f"{count}_{class_tokens}", count, class_tokens, extension, guard,
                                   field_name, is_reg))
    return subsets


