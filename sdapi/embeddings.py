"""The textual-inversion embeddings folder as A1111 v1.2.1 walks it (``embeddings/`` or ``--embeddings-dir``).

No torch here: this lists the files and hashes them; ``sdapi.engine`` reads them for the loaded model.

A1111 walks the folder (following symlinked folders) and tries every non-empty file; the extensions it can read
are ``.pt``, ``.bin``, ``.safetensors`` and images (``.png``, ``.webp``, ``.jxl``, ``.avif``, any case), so only
those are listed. Names clash by file stem: the later file in walk order wins, so the walk is sorted (A1111's
follows the file system's order). The ``TI hashes`` infotext (later A1111) names each used embedding with the
first 12 hex digits of its file's sha256, cached in ``cache.json`` under ``textual_inversion/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sdapi.checkpoints import HashCache
from sdapi.files import SHORTHASH_LENGTH

EMBEDDING_EXTENSIONS = (".pt", ".bin", ".safetensors", ".png", ".webp", ".jxl", ".avif")


def scan_embedding_files(folders: list[Path]) -> tuple[Path, ...]:
    """Every candidate embedding file below ``folders``, in walk order (sorted), each real folder walked once."""
    found: list[Path] = []
    seen: set[str] = set()
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        for root, dirs, files in os.walk(folder, followlinks=True):
            real = os.path.realpath(root)
            if real in seen:  # a symlink back up the tree would walk for ever
                dirs[:] = []
                continue
            seen.add(real)
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                if path.suffix.lower() in EMBEDDING_EXTENSIONS and _non_empty(path):
                    found.append(Path(os.path.abspath(path)))
    return tuple(found)


def _non_empty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def ti_hashes_text(used: list[tuple[str, Path]], hash_cache: HashCache) -> str | None:
    """Later A1111's ``TI hashes`` value: ``name: hash12`` per used embedding (``:`` and ``,`` dropped from names),
    ``None`` when none was used.

    Args:
        used: ``(name, file)`` in A1111's order (positive prompts' first, then negative prompts').
        hash_cache: ``cache.json``.
    """
    parts = []
    for name, path in used:
        try:
            digest = hash_cache.sha256(f"textual_inversion/{name}", path)
        except OSError:
            continue  # the file went away: A1111 leaves an embedding without a hash out
        parts.append(f"{name.replace(':', '').replace(',', '')}: {digest[:SHORTHASH_LENGTH]}")
    return ", ".join(parts) or None

