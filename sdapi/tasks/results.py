"""A finished task's images as files beside the task database: ``results/<task id>/00000.png`` and so on.

Files are written under a temporary name, flushed to disk and renamed, all before the task is recorded as done, so
a done task's files are always complete; a task re-run after a crash writes the same names again.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

# Task ids are uuid4 strings made by the server; anything else never becomes a path.
TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RESULT_NAME = re.compile(r"\d{5}\.(png|jpg|webp)")
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def image_extension(data: bytes) -> str:
    """``png``, ``jpg`` or ``webp`` from an encoded image's first bytes (``samples_format`` decides which)."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise ValueError("not a PNG, JPEG or WEBP image")


def media_type(name: str) -> str:
    """The content type of a result file name."""
    return MEDIA_TYPES[name.rsplit(".", 1)[-1]]


class ResultFiles:
    """The result folder.

    Args:
        root: the folder holding one sub-folder per task.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, task_id: str) -> Path:
        """The task's folder.

        Raises:
            ValueError: ``task_id`` is not a task id.
        """
        if not TASK_ID.fullmatch(task_id):
            raise ValueError("not a task id")
        return self.root / task_id

    def write(self, task_id: str, images: list[bytes]) -> list[str]:
        """Replace the task's files with ``images`` (encoded PNG/JPEG/WEBP) and return their names, in order."""
        folder = self.folder(task_id)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        names = []
        for index, data in enumerate(images):
            name = f"{index:05d}.{image_extension(data)}"
            temporary = folder / f".{name}.tmp"
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, folder / name)
            names.append(name)
        _fsync_folder(folder)
        return names

    def path(self, task_id: str, name: str) -> Path | None:
        """One result file, or ``None`` when the name is not a result name or the file is gone."""
        if not RESULT_NAME.fullmatch(name):
            return None
        path = self.folder(task_id) / name
        return path if path.is_file() else None

    def delete(self, task_id: str) -> None:
        """Remove a task's files (nothing when it has none)."""
        try:
            folder = self.folder(task_id)
        except ValueError:
            return
        shutil.rmtree(folder, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    # The renames are durable only once the folder itself is flushed (POSIX); Windows cannot open folders.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
