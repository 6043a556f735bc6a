"""The LoRA catalog: files in ``models/Lora`` (or ``--lora-dir``) as A1111 names and lists them.

Pure Python: metadata and tensor names come from the safetensors header JSON.
A1111 v1.2.1 behaviour (``extensions-builtin/Lora/lora.py``): every ``.pt``, ``.ckpt`` and ``.safetensors``
below the folder (extension matched case-sensitively), sorted by lower-cased path; ``name`` is the file stem,
``alias`` the ``ss_output_name`` metadata (or the name). A prompt may use either; when two files share one, the
later file in that order wins. Hashes (A1111 v1.3+, for the ``Lora hashes`` infotext) are kohya's
``sshs_model_hash`` when the metadata has it, else computed once per file version.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdapi.files import SHORTHASH_LENGTH, addnet_hash, read_safetensors_header, sha256_of_file
from sdapi.engine.lora_format import unsupported_reason

log = logging.getLogger("sdapi")

LORA_EXTENSIONS = (".pt", ".ckpt", ".safetensors")
# A1111's display order for well-known kohya keys; every other key keeps its place after them.
METADATA_ORDER = {"ss_sd_model_name": 1, "ss_resolution": 2, "ss_clip_skip": 3, "ss_num_train_images": 10,
                  "ss_tag_frequency": 20}
HIDDEN_METADATA = ("ssmd_cover_images",)  # base64 cover images: too big for a listing


def display_metadata(raw: dict[str, str]) -> dict[str, Any]:
    """Metadata as A1111 lists it: JSON-looking values decoded, known keys first, cover images removed.

    Args:
        raw: the header's ``__metadata__`` (string values).

    Returns:
        The ordered metadata.
    """
    decoded = {}
    for key, value in raw.items():
        decoded[key] = value
        if isinstance(value, str) and value[:1] == "{":
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                pass
    ordered = dict(sorted(decoded.items(), key=lambda kv: METADATA_ORDER.get(kv[0], 999)))
    for key in HIDDEN_METADATA:
        ordered.pop(key, None)
    return ordered


@dataclass
class LoraOnDisk:
    """One LoRA file.

    Args:
        name: file stem.
        filename: absolute path.
        metadata: as listed (see :func:`display_metadata`).
        raw_metadata: the header's ``__metadata__`` unchanged.
        problem: why sdapi cannot apply it (a LoHa, …), ``None`` when it can or cannot tell (``.pt``).
    """

    name: str
    filename: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    raw_metadata: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    @property
    def alias(self) -> str:
        """``ss_output_name`` from the metadata, else the name."""
        alias = self.metadata.get("ss_output_name", self.name)
        return alias if isinstance(alias, str) else self.name

    @property
    def is_safetensors(self) -> bool:
        """Whether the file is a ``.safetensors`` (else a pickled ``.pt``/``.ckpt``)."""
        return self.filename.suffix.lower() == ".safetensors"

    def as_item(self) -> dict[str, Any]:
        """The ``/sdapi/v1/loras`` item."""
        return {"name": self.name, "alias": self.alias, "path": str(self.filename), "metadata": self.metadata}


def read_lora(path: Path) -> LoraOnDisk:
    """Describe one file; an unreadable header is logged and leaves the metadata empty (as A1111).

    Args:
        path: absolute path of a LoRA file.

    Returns:
        The entry.
    """
    entry = LoraOnDisk(name=path.stem, filename=path)
    if not entry.is_safetensors:
        return entry
    try:
        header = read_safetensors_header(path)
    except (OSError, ValueError) as exc:
        log.error("Could not read the LoRA %s: %s", path, exc)
        entry.problem = f"an unreadable file ({exc})"
        return entry
    entry.raw_metadata = header.pop("__metadata__", None) or {}
    entry.metadata = display_metadata(entry.raw_metadata)
    entry.problem = unsupported_reason(header)
    return entry


def scan_lora_dir(root: Path) -> list[Path]:
    """Every LoRA file below ``root`` in A1111's order (lower-cased path); symlinked folders are not followed."""
    found = []
    for folder, _, files in os.walk(root):
        found += [Path(folder, f) for f in files if os.path.splitext(f)[1] in LORA_EXTENSIONS]
    return sorted((Path(os.path.abspath(p)) for p in found), key=lambda p: str(p).lower())


class LoraCatalog:
    """The LoRA folder's files, looked up by name or alias.

    Args:
        lora_dir: ``models/Lora`` or ``--lora-dir``.
    """

    def __init__(self, lora_dir: Path):
        self.lora_dir = Path(lora_dir)
        self._lock = threading.RLock()
        self._items: list[LoraOnDisk] = []
        self._by_alias: dict[str, LoraOnDisk] = {}
        self._hashes: dict[tuple[Path, int, int], str] = {}

    def refresh(self) -> list[LoraOnDisk]:
        """Rescan the folder (``/refresh-loras``); returns the new list."""
        items = [read_lora(path) for path in scan_lora_dir(self.lora_dir)]
        by_alias: dict[str, LoraOnDisk] = {}
        for entry in items:
            by_alias[entry.name] = entry
            by_alias[entry.alias] = entry
        with self._lock:
            self._items, self._by_alias = items, by_alias
        return items

    def items(self) -> list[LoraOnDisk]:
        """The current list, in A1111's order."""
        with self._lock:
            return list(self._items)

    def find(self, name: str) -> LoraOnDisk | None:
        """Exact lookup by name or alias; on a miss the folder is rescanned once, as A1111 does."""
        with self._lock:
            entry = self._by_alias.get(name)
        if entry is None:
            self.refresh()
            with self._lock:
                entry = self._by_alias.get(name)
        return entry

    def shorthash(self, entry: LoraOnDisk) -> str | None:
        """The 12-hex hash A1111 v1.3+ writes into ``Lora hashes``; ``None`` when the file is gone.

        Uses ``sshs_model_hash`` from the metadata (trusted, as A1111 does), else hashes the file once per
        ``(path, mtime, size)``: the tensor data for safetensors, the whole file otherwise.
        """
        stored = entry.raw_metadata.get("sshs_model_hash")
        if stored:
            return stored[:SHORTHASH_LENGTH]
        try:
            stat = entry.filename.stat()
        except OSError:
            return None
        key = (entry.filename, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            known = self._hashes.get(key)
        if known is None:
            known = addnet_hash(entry.filename) if entry.is_safetensors else sha256_of_file(entry.filename)
            with self._lock:
                self._hashes[key] = known
        return known[:SHORTHASH_LENGTH]
