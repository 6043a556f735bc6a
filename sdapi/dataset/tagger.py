"""The WD14 tagger (SmilingWolf's wd-v1-4 / wd v3 ONNX models): ``model.onnx`` + ``selected_tags.csv`` from a folder.

Preprocessing is the one these models were trained with, as kohya's and A1111's tagger scripts do it: alpha
composited on white, RGB to BGR, padded to a square with white, resized to the model's input size, float32 0..255
(no normalisation), NHWC.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("sdapi")

MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"
RATING, GENERAL, CHARACTER = 9, 0, 4
"""``selected_tags.csv`` categories; other categories (v3's artist/copyright/meta) are thresholded as general."""


class TaggerError(RuntimeError):
    """A tagger folder that cannot be used (missing files, a CSV that does not match the model)."""

    status_code = 422


@dataclass(frozen=True)
class TagLabel:
    """One output of the model: its tag and ``selected_tags.csv`` category."""

    name: str
    category: int


@dataclass(frozen=True)
class TagScores:
    """What the model said about one image: every label with its probability, in the model's order."""

    labels: tuple[TagLabel, ...]
    scores: np.ndarray


def is_tagger_folder(folder: Path) -> bool:
    """True when ``folder`` holds both files a WD14 tagger needs."""
    return (folder / MODEL_FILE).is_file() and (folder / TAGS_FILE).is_file()


def read_labels(path: Path) -> tuple[TagLabel, ...]:
    """The rows of ``selected_tags.csv`` (header ``tag_id,name,category,count``) as labels.

    Raises:
        TaggerError: another header, or a row whose category is not a number.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0][:3] != ["tag_id", "name", "category"]:
        raise TaggerError(f"{path} is not a WD14 selected_tags.csv (expected the header tag_id,name,category,count)")
    try:
        return tuple(TagLabel(name=row[1], category=int(row[2])) for row in rows[1:] if row)
    except (IndexError, ValueError) as exc:
        raise TaggerError(f"{path}: unreadable row ({exc})") from exc


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """One model input row: ``[size, size, 3]`` float32 BGR on a white square.

    Args:
        image: any PIL image; transparency becomes white.
        size: the model's input side (448 for every published WD14 model).
    """
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        image = canvas
    pixels = np.asarray(image.convert("RGB"))[:, :, ::-1]
    side = max(pixels.shape[:2])
    pad_y, pad_x = side - pixels.shape[0], side - pixels.shape[1]
    pixels = np.pad(pixels, ((pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2), (0, 0)),
                    mode="constant", constant_values=255)
    return _resize_square(pixels, size).astype(np.float32)


def _resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if pixels.shape[0] == size:
        return pixels
    interpolation = cv2.INTER_AREA if pixels.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(pixels), (size, size), interpolation=interpolation)


class WD14Tagger:
    """A loaded WD14 model and its labels.

    Args:
        folder: holds ``model.onnx`` and ``selected_tags.csv``.
        threads: onnxruntime intra-op threads (None: its default).

    Raises:
        TaggerError: files missing, or the model's output does not match the CSV.
    """

    def __init__(self, folder: Path, threads: int | None = None):
        import onnxruntime as ort

        if not is_tagger_folder(folder):
            raise TaggerError(f"{folder} has no WD14 tagger: it needs {MODEL_FILE} and {TAGS_FILE}")
        self.folder = folder
        self.labels = read_labels(folder / TAGS_FILE)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        preferred = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), sess_options=options, providers=preferred)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.size = _input_side(model_input.shape)
        log.info("Loaded WD14 tagger %s (%d tags, %dpx input)", folder, len(self.labels), self.size)

    def predict(self, image: Image.Image) -> TagScores:
        """The probability of every label for ``image``.

        Raises:
            TaggerError: the model gives a different number of scores than the CSV has rows.
        """
        batch = prepare_image(image, self.size)[None]
        scores = np.asarray(self.session.run(None, {self.input_name: batch})[0][0], dtype=np.float32)
        if scores.shape[0] != len(self.labels):
            raise TaggerError(f"{self.folder / MODEL_FILE} gives {scores.shape[0]} scores but "
                              f"{TAGS_FILE} lists {len(self.labels)} tags")
        return TagScores(labels=self.labels, scores=scores)


def _input_side(shape: list) -> int:
    """The square side of an NHWC input shape; 448 where the model leaves it symbolic."""
    side = shape[1] if len(shape) == 4 else None
    return side if isinstance(side, int) and side > 0 else 448
