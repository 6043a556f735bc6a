"""Writing dataset files atomically: a reader (or a crash) sees the old file or the new one, never half of one.

Writing to a temporary name and renaming over the target also replaces a symlink planted at the target instead of
writing through it, so an output name cannot be used to overwrite a file elsewhere.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

from PIL import Image


def write_atomically(target: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create or replace ``target`` with what ``write`` puts into a temporary file beside it.

    Args:
        target: the final path; its folder must exist.
        write: fills the open binary file.
    """
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text_atomically(target: Path, text: str) -> None:
    """``target`` holds ``text`` (UTF-8) afterwards, replaced in one step."""
    write_atomically(target, lambda out: out.write(text.encode("utf-8")))


def save_png_atomically(image: Image.Image, target: Path) -> None:
    """Save ``image`` as PNG at ``target``, replaced in one step."""
    write_atomically(target, lambda out: image.save(out, format="PNG"))
