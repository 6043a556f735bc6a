"""The ControlNet files a server offers, named as the extension names them: ``<file stem> [<hash8>]``, the hash
A1111's old 8-hex model hash (``sd_models.model_hash``: sha256 of 64 KiB at offset 1 MiB).

Folders are searched recursively in the extension's order (``models/ControlNet``, then ``--controlnet-dir``), each
folder's files sorted by file name; a name found twice keeps its first file. A unit's ``model`` is found as the
extension's ``find_closest_lora_model_name`` finds it: the exact listed name, else the file stem (case ignored),
else the shortest stem containing it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sdapi.files import legacy_hash

MODEL_EXTENSIONS = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")


class ControlNetCatalog:
    """The listed ControlNet files, rescanned on demand (hashes kept while a file is unchanged).

    Args:
        folders: the folders to search, in order.
    """

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._models: dict[str, Path] = {}
        self._lock = threading.Lock()
        self.refresh()

    def _hash(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._hashes:
            self._hashes[key] = legacy_hash(path)
        return self._hashes[key]

    def refresh(self) -> None:
        """Scan the folders again."""
        found: dict[str, Path] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            files = sorted((p for p in folder.rglob("*") if p.suffix in MODEL_EXTENSIONS and p.is_file()),
                           key=lambda p: p.name)
            for path in files:
                if path.stem == "None":
                    continue
                found.setdefault(f"{path.stem} [{self._hash(path)}]", path)
        with self._lock:
            self._models = found

    def names(self) -> list[str]:
        """``/controlnet/model_list``'s names."""
        with self._lock:
            return list(self._models)

    def find(self, name: str | None) -> Path | None:
        """The file a unit's ``model`` names, or ``None``."""
        if not name:
            return None
        with self._lock:
            models = dict(self._models)
        if name in models:
            return models[name]
        stems = {path.stem.lower(): listed for listed, path in models.items()}
        search = name.lower()
        if search in stems:
            return models[stems[search]]
        matching = sorted((stem for stem in stems if search in stem), key=len)
        return models[stems[matching[0]]] if matching else None
