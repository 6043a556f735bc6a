"""Finding the captioning models the user put in place, and keeping the last one of each kind loaded.

Taggers live in ``models/tagger/<name>/`` (``model.onnx`` + ``selected_tags.csv``), BLIP captioners in
``models/BLIP/<name>/`` (a transformers folder). Nothing is downloaded: a missing model is a clear 422.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from sdapi.dataset.tagger import MODEL_FILE, WD14Tagger, is_tagger_folder
from sdapi.errors import Unprocessable


class NoCaptionModel(Unprocessable):
    """422: a caption or tags were asked for and no model of that kind is installed."""


def model_folders(root: Path, accepts: Callable[[Path], bool]) -> dict[str, Path]:
    """Model folders under ``root`` by name: ``root`` itself when it is one, else its accepted subfolders."""
    if not root.is_dir():
        return {}
    if accepts(root):
        return {root.name: root}
    return {child.name: child for child in sorted(root.iterdir()) if child.is_dir() and accepts(child)}


def _is_blip_folder(folder: Path) -> bool:
    from sdapi.engine.blip import is_blip_folder

    return is_blip_folder(folder)


class CaptionModels:
    """The installed taggers and BLIP captioners; loads on first use and keeps the last one of each kind.

    Args:
        tagger_dir: folder of WD14 tagger folders.
        blip_dir: folder of BLIP transformers folders.
        device: where BLIP runs (``cpu`` or ``cuda``).
        threads: onnxruntime threads for the tagger.
    """

    def __init__(self, tagger_dir: Path, blip_dir: Path, device: Any = "cpu", threads: int | None = None):
        self.tagger_dir, self.blip_dir = Path(tagger_dir), Path(blip_dir)
        self.device, self.threads = device, threads
        self._loaded: dict[str, tuple[tuple[Path, float], Any]] = {}
        self._lock = threading.Lock()

    def taggers(self) -> dict[str, Path]:
        """Installed WD14 taggers by folder name."""
        return model_folders(self.tagger_dir, is_tagger_folder)

    def captioners(self) -> dict[str, Path]:
        """Installed BLIP captioners by folder name."""
        return model_folders(self.blip_dir, _is_blip_folder)

    def tagger_folder(self, name: str | None = None) -> Path:
        """The named tagger's folder (the first by name when ``name`` is None); checks, loads nothing.

        Raises:
            NoCaptionModel: none installed, or none of that name.
        """
        return self._pick(self.taggers(), name, "WD14 tagger", self.tagger_dir,
                          f"a folder with {MODEL_FILE} and selected_tags.csv")

    def captioner_folder(self, name: str | None = None) -> Path:
        """The named BLIP captioner's folder (the first by name when ``name`` is None); checks, loads nothing.

        Raises:
            NoCaptionModel: none installed, or none of that name.
        """
        return self._pick(self.captioners(), name, "BLIP captioning model", self.blip_dir,
                          "a transformers BLIP folder (config.json, weights, tokenizer and processor files)")

    def tagger(self, name: str | None = None) -> WD14Tagger:
        """The named tagger, loaded (or the one loaded last, when it is the same unchanged folder)."""
        folder = self.tagger_folder(name)
        return self._load("tagger", folder, folder / MODEL_FILE, lambda: WD14Tagger(folder, self.threads))

    def captioner(self, name: str | None = None):
        """The named BLIP captioner, loaded (or the one loaded last, when it is the same unchanged folder)."""
        from sdapi.engine.blip import BlipCaptioner

        folder = self.captioner_folder(name)
        return self._load("blip", folder, folder / "config.json", lambda: BlipCaptioner(folder, self.device))

    def offload(self) -> None:
        """Move a loaded captioner off the accelerator (kept in RAM; its next use moves it back)."""
        with self._lock:
            cached = self._loaded.get("blip")
        if cached is not None:
            cached[1].offload()

    @staticmethod
    def _pick(found: dict[str, Path], name: str | None, kind: str, root: Path, needs: str) -> Path:
        if name is None and found:
            return next(iter(found.values()))
        if name is not None and name in found:
            return found[name]
        if not found:
            raise NoCaptionModel(f"No {kind} is installed: put {needs} in {root}")
        raise NoCaptionModel(f"{kind} '{name}' not found in {root}; installed: {', '.join(found)}")

    def _load(self, kind: str, folder: Path, marker: Path, load: Callable[[], Any]) -> Any:
        key = (folder, marker.stat().st_mtime)
        with self._lock:
            cached = self._loaded.get(kind)
            if cached is not None and cached[0] == key:
                return cached[1]
            self._loaded.pop(kind, None)  # free the old one before loading its replacement
            model = load()
            self._loaded[kind] = (key, model)
            return model
