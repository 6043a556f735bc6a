"""A training dataset on disk, read the way kohya's trainer reads it.

A training root holds ``<repeats>_<class tokens>`` subfolders (``10_aki``); a plain folder of images counts as one
such folder. An image's caption is the first line of ``<image stem><caption_extension>``; an image without one is
captioned with its folder's class tokens. ``ss_tag_frequency`` counts, per folder, every tag (split on ``,``,
stripped, lower case) of every image's caption once.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sdapi.dataset.paths import PathGuard

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP"})
"""kohya's list (exact suffixes: ``.Png`` is not an image to it)."""

REPEATS_FOLDER = re.compile(r"^(\d+)_(.*)$")


@dataclass(frozen=True)
class DatasetImage:
    """One training image and where its caption is (the file may not exist)."""

    image: Path
    caption_file: Path


@dataclass
class DatasetDir:
    """One image folder.

    Args:
        name: folder name (the ``ss_tag_frequency`` key).
        path: the folder.
        class_tokens: from ``N_tokens``; None for a plain folder.
        images: its images, sorted by name.
    """

    name: str
    path: Path
    class_tokens: str | None = None
    images: list[DatasetImage] = field(default_factory=list)


def read_caption(path: Path) -> str | None:
    """The first line of a caption file, stripped; None when the file does not exist."""
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines[0].strip() if lines else ""


def image_folders(root: Path) -> list[tuple[Path, str | None]]:
    """The ``N_tokens`` subfolders of ``root`` with their class tokens, or ``root`` itself when it has none
    (with class tokens when it is itself named ``N_tokens``)."""
    subfolders = [(child, match.group(2)) for child in sorted(root.iterdir())
                  if child.is_dir() and (match := REPEATS_FOLDER.match(child.name))]
    own = REPEATS_FOLDER.match(root.name)
    return subfolders or [(root, own.group(2) if own else None)]


def scan_dataset(root: Path, caption_extension: str = ".txt", guard: PathGuard | None = None) -> list[DatasetDir]:
    """Every image folder of a dataset and its images.

    Args:
        root: a training root or a plain image folder.
        caption_extension: the caption files' suffix (``.txt``; kohya's own default is ``.caption``).
        guard: when given, every image and caption file must resolve inside the allowed roots.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        PathNotAllowed: a file escapes the roots through a symlink.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    dirs = []
    for folder, tokens in image_folders(root):
        found = DatasetDir(name=folder.name, path=folder, class_tokens=tokens)
        for path in sorted(folder.iterdir()):
            if path.suffix in IMAGE_EXTENSIONS and path.is_file():
                entry = DatasetImage(path, path.with_name(path.stem + caption_extension))
                if guard is not None:
                    guard.check(entry.image)
                    guard.check(entry.caption_file)
                found.images.append(entry)
        dirs.append(found)
    return dirs


def training_caption(entry: DatasetImage, folder: DatasetDir) -> str:
    """The caption kohya trains ``entry`` with: its file's first line, else the folder's class tokens."""
    caption = read_caption(entry.caption_file)
    return caption if caption is not None else (folder.class_tokens or "")


def tag_frequency(dirs: list[DatasetDir]) -> dict[str, dict[str, int]]:
    """kohya's ``ss_tag_frequency``: per folder name, how many captions carry each (lower-cased) tag."""
    frequency: dict[str, dict[str, int]] = {}
    for folder in dirs:
        counts = frequency.setdefault(folder.name, {})
        for entry in folder.images:
            for tag in training_caption(entry, folder).split(","):
                tag = tag.strip().lower()
                if tag:
                    counts[tag] = counts.get(tag, 0) + 1
    return frequency


def overall_frequency(per_dir: dict[str, dict[str, int]]) -> Counter:
    """The per-folder counts summed over the dataset."""
    total: Counter = Counter()
    for counts in per_dir.values():
        total.update(counts)
    return total
