"""Finding the captioning models the user put in place, and keeping the last tagger loaded.

Taggers live in ``models/tagger/<name>/`` (``model.onnx`` + ``selected_tags.csv``) and run here on onnxruntime;
BLIP captioners live in ``models/BLIP/<name>/`` (a transformers folder) and run on the engine, which keeps the
last one loaded. Nothing is downloaded: a missing model is a clear 422.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from sdapi.dataset.tagger import MODEL_FILE, WD14Tagger, is_tagger_folder
from sdapi.engine.api import CaptionSettings, Engine
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


def is_blip_folder(folder: Path) -> bool:
    """True when ``folder`` looks like a saved BLIP captioning model."""
    config = folder / "config.json"
    return config.is_file() and '"blip' in config.read_text(encoding="utf-8", errors="ignore").lower()


@dataclass(frozen=True)
class EngineCaptioner:
    """A BLIP captioner folder, run by the engine.

    Args:
        engine: the engine that loads and runs it.
        folder: the captioner's folder.
    """

    engine: Engine
    folder: Path

    def caption(self, image: Image.Image, settings: CaptionSettings = CaptionSettings()) -> str:
        """One caption for ``image`` (greedy or beam search, as A1111's ``generate_caption``)."""
        return self.engine.caption([image], self.folder, settings)[0]


class CaptionModels:
    """The installed taggers and BLIP captioners; a tagger loads on first use and the last one stays loaded.

    Args:
        tagger_dir: folder of WD14 tagger folders.
        blip_dir: folder of BLIP transformers folders.
        engine: runs BLIP (built on first use: a CLI that only tags never loads torch).
        threads: onnxruntime threads for the tagger.
    """

    def __init__(self, tagger_dir: Path, blip_dir: Path, engine: Callable[[], Engine],
                 threads: int | None = None):
        self.tagger_dir, self.blip_dir = Path(tagger_dir), Path(blip_dir)
        self.engine, self.threads = engine, threads
        self._loaded: dict[str, tuple[tuple[Path, float], Any]] = {}
        self._lock = threading.Lock()

    def taggers(self) -> dict[str, Path]:
        """Installed WD14 taggers by folder name."""
        return model_folders(self.tagger_dir, is_tagger_folder)

    def captioners(self) -> dict[str, Path]:
        """Installed BLIP captioners by folder name."""
        return model_folders(self.blip_dir, is_blip_folder)

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

    def captioner(self, name: str | None = None) -> EngineCaptioner:
        """The named BLIP captioner (the engine loads it on first use and keeps the last one)."""
        return EngineCaptioner(self.engine(), self.captioner_folder(name))

    @staticmethod
    def _pick(found: dict[str, Path], name: str | None, kind: str, root: Path, needs: str) -> Path:
        if name is None and found:
            return next(iter(found.values()))
        if name is not None and name in found:
            return found[name]
        # The folder is named by its last two parts (models/BLIP): a response never shows a server path.
        shown = Path(*root.parts[-2:])
        if not found:
            raise NoCaptionModel(f"No {kind} is installed: put {needs} in {shown}")
        raise NoCaptionModel(f"{kind} '{name}' not found in {shown}; installed: {', '.join(found)}")

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
