"""Files on disk, without torch: atomic writes, safetensors headers, A1111's and kohya's hashes.

The lowest layer of sdapi: the catalogs, the dataset and training code and the engine all read and write model
files through these, and this module imports nothing else from sdapi.

Writing to a temporary name and renaming over the target means a reader (or a crash) sees the old file or the new
one, never half of one; it also replaces a symlink planted at the target instead of writing through it, so an
output name cannot be used to overwrite a file elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from PIL import Image

_BLOCK = 1024 * 1024
# How many hex digits of a LoRA's hash A1111 shows (``Lora hashes`` in infotexts).
SHORTHASH_LENGTH = 12


# A header claiming more than this is a corrupt file, not a model: refuse it rather than read it into memory.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


class NotSafetensors(ValueError):
    """A file whose header is not a safetensors header."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path} is not a safetensors file ({reason})")
        self.reason = reason


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor entries plus ``__metadata__``), without reading tensors.

    Raises:
        NotSafetensors: a bad header length, undecodable JSON, or a header that is not an object.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        n = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
        if not 2 <= n <= min(MAX_SAFETENSORS_HEADER, size - 8):
            raise NotSafetensors(path, "bad header length")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise NotSafetensors(path, str(exc)) from exc
    if not isinstance(header, dict):
        raise NotSafetensors(path, "header is not an object")
    return header


def sha256_of_file(path: Path, offset: int = 0) -> str:
    """sha256 of a file from ``offset`` to its end, read in 1 MiB blocks like A1111."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def legacy_hash(path: Path) -> str:
    """A1111's old 8-hex model hash: sha256 of 64 KiB read at offset 1 MiB."""
    try:
        with open(path, "rb") as f:
            f.seek(0x100000)
            return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]
    except OSError:
        return "NOFILE"


def addnet_hash(path: Path) -> str:
    """kohya's ``sshs_model_hash``: sha256 of a safetensors file's tensor data (everything after the header).

    Args:
        path: a safetensors file.

    Returns:
        The hex digest.
    """
    with open(path, "rb") as f:
        header_length = int.from_bytes(f.read(8), "little")
    return sha256_of_file(path, offset=8 + header_length)


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
