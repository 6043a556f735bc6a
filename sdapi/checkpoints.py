"""The checkpoint catalog: A1111's names, titles, hashes and aliases for files in ``models/Stable-diffusion``.

No torch here: listing and hashing are file-system work (``sdapi.engine`` loads the weights).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sdapi.files import legacy_hash, sha256_of_file

log = logging.getLogger("sdapi")

CHECKPOINT_EXTENSIONS = (".safetensors", ".ckpt")
VAE_SUFFIXES = (".vae.safetensors", ".vae.ckpt")
class HashCache:
    """A1111's ``cache.json``: ``{"hashes": {"checkpoint/<name>": {"mtime", "sha256"}}}``.

    An entry is valid while the file's mtime is not newer than the cached one, so start-up never rehashes.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def get(self, key: str, file: Path) -> str | None:
        """Cached sha256 for ``key`` if still valid for ``file``."""
        entry = self._read().get("hashes", {}).get(key)
        if not entry:
            return None
        try:
            if os.path.getmtime(file) > entry.get("mtime", 0):
                return None
        except OSError:
            return None
        return entry.get("sha256")

    def sha256(self, key: str, file: Path) -> str:
        """``file``'s sha256: the cached one while the file is unchanged, else computed and stored.

        Raises:
            OSError: the file cannot be read.
        """
        digest = self.get(key, file)
        if digest is None:
            digest = sha256_of_file(file)
            self.put(key, file, digest)
        return digest

    def put(self, key: str, file: Path, sha256: str) -> None:
        """Store a hash; written atomically so a crash never leaves a broken cache."""
        with self._lock:
            data = self._read()
            data.setdefault("hashes", {})[key] = {"mtime": os.path.getmtime(file), "sha256": sha256}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=4), encoding="utf-8")
            os.replace(tmp, self.path)


@dataclass
class CheckpointInfo:
    """One checkpoint as A1111 names it.

    Args:
        filename: absolute path.
        name: path relative to the models folder (``sub/model.safetensors``), or the basename outside it.
        sha256: full hash once known.
    """

    filename: Path
    name: str
    sha256: str | None = None
    legacy: str = field(default="")

    @property
    def model_name(self) -> str:
        """``name`` with separators turned into ``_`` and the extension removed."""
        return os.path.splitext(self.name.replace("/", "_").replace("\\", "_"))[0]

    @property
    def shorthash(self) -> str | None:
        """First 10 hex of the sha256: A1111's ``hash`` and ``Model hash``."""
        return self.sha256[:10] if self.sha256 else None

    @property
    def title(self) -> str:
        """``name [shorthash]`` once hashed, else just ``name``."""
        return f"{self.name} [{self.shorthash}]" if self.shorthash else self.name

    @property
    def config(self) -> str | None:
        """An ldm ``<checkpoint>.yaml`` beside the file, if any."""
        yaml = self.filename.with_suffix(".yaml")
        return str(yaml) if yaml.exists() else None

    @property
    def infotext_model_name(self) -> str:
        """``Model:`` value in infotexts: ``model_name`` without ``,`` and ``:``."""
        return self.model_name.replace(",", "").replace(":", "")

    def aliases(self) -> list[str]:
        """Every string ``sd_model_checkpoint`` may use to name this checkpoint (exact match)."""
        ids = [self.legacy, self.model_name, self.title, self.name, f"{self.name} [{self.legacy}]"]
        if self.shorthash:
            ids += [self.shorthash, self.sha256, f"{self.name} [{self.shorthash}]"]
        ids.append(self.filename.name)
        return [i for i in ids if i]

    def as_item(self) -> dict:
        """The ``/sdapi/v1/sd-models`` item."""
        return {
            "title": self.title,
            "model_name": self.model_name,
            "hash": self.shorthash,
            "sha256": self.sha256,
            "filename": str(self.filename),
            "config": self.config,
        }


def _is_checkpoint(path: Path) -> bool:
    low = path.name.lower()
    return low.endswith(CHECKPOINT_EXTENSIONS) and not low.endswith(VAE_SUFFIXES)


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


class CheckpointCatalog:
    """Scans the models folder and answers lookups by any A1111 alias.

    Args:
        models_dir: ``models/Stable-diffusion`` (or ``--ckpt-dir``).
        hash_cache: the on-disk hash cache.
        first: ``--ckpt``: listed first and used as the default.
        fallback_dirs: folders scanned only when ``models_dir`` has no checkpoint (the built-in demo).
    """

    def __init__(self, models_dir: Path, hash_cache: HashCache, first: Path | None = None,
                 fallback_dirs: tuple[Path, ...] = ()):
        self.models_dir = models_dir
        self.hash_cache = hash_cache
        self.first = first
        self.fallback_dirs = fallback_dirs
        self._lock = threading.RLock()
        self._items: list[CheckpointInfo] = []

    def refresh(self) -> list[CheckpointInfo]:
        """Rescan; keeps known hashes. Returns the new list."""
        files = self._scan(self.models_dir)
        if not files:
            for extra in self.fallback_dirs:
                files += self._scan(extra)
        if self.first is not None and self.first.exists():
            first = self.first.resolve()
            files = [first] + [f for f in files if f != first]
        infos = []
        for f in files:
            info = CheckpointInfo(filename=f, name=_relative_name(f, self.models_dir.resolve()))
            info.sha256 = self.hash_cache.get(self._cache_key(info), f)
            info.legacy = legacy_hash(f)
            infos.append(info)
        with self._lock:
            self._items = infos
        return infos

    @staticmethod
    def _scan(root: Path) -> list[Path]:
        if not root.is_dir():
            return []
        found = [p.resolve() for p in root.rglob("*") if p.is_file() and _is_checkpoint(p)]
        return sorted(found, key=lambda p: str(p).lower())

    @staticmethod
    def _cache_key(info: CheckpointInfo) -> str:
        return f"checkpoint/{info.name}"

    def items(self) -> list[CheckpointInfo]:
        """Current list, in A1111's order."""
        with self._lock:
            return list(self._items)

    def find(self, name: str | None) -> CheckpointInfo | None:
        """Exact lookup by any alias (A1111's ``checkpoint_alisases``); ``None`` when unknown."""
        if not name:
            return None
        for info in self.items():
            if name in info.aliases():
                return info
        return None

    def closest(self, name: str | None) -> CheckpointInfo | None:
        """A1111's ``get_closet_checkpoint_match``: an exact alias, else the shortest title containing ``name``,
        else the shortest containing it without its ``[hash]``; ``None`` when nothing matches."""
        exact = self.find(name)
        if exact is not None or not name:
            return exact
        for wanted in (name, re.sub(r"\s*\[[^]]*]\s*$", "", name)):
            found = sorted((info for info in self.items() if wanted in info.title), key=lambda i: len(i.title))
            if found:
                return found[0]
        return None

    def ensure_hashed(self, info: CheckpointInfo) -> str:
        """Compute (once, then cached on disk) the full sha256, as A1111 does when it loads a model."""
        if info.sha256 is None:
            key = self._cache_key(info)
            info.sha256 = self.hash_cache.get(key, info.filename)
            if info.sha256 is None:
                log.info("Calculating sha256 for %s", info.filename)
                info.sha256 = sha256_of_file(info.filename)
                self.hash_cache.put(key, info.filename, info.sha256)
        return info.sha256

    def hashes(self, name: str, path: Path) -> tuple[str, str]:
        """``(sha256, legacy hash)`` of a base model named as in a request: the catalog's (cached) when it lists
        the name, else computed from ``path`` (a model given by path), as kohya hashes its base model.

        Args:
            name: the request's title/filename/hash, or a path.
            path: the resolved file.
        """
        info = self.find(name)
        if info is not None:
            return self.ensure_hashed(info), info.legacy or legacy_hash(info.filename)
        return sha256_of_file(path), legacy_hash(path)
