"""A1111 v1.2.1's "Preprocess images": a folder of pictures in, ``NNNNN-S-name.png`` + ``.txt`` pairs out.

Per source image, in this order and not exclusive of each other: split (oversized images), focal crop (non-square
images), auto-sized crop, keep original size; when none of them produced anything, crop-and-resize to the target.
Each output is saved (and, with ``flip``, its mirror image too) with a caption built from BLIP and/or tags and the
image's existing ``.txt``.

One deliberate difference: files are taken in sorted order (A1111 uses ``os.listdir`` order, which varies between
file systems), so the same folder always gives the same names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from PIL import Image, ImageOps

from sdapi.dataset.autocrop import focal_crop
from sdapi.dataset.captions import Caption
from sdapi.dataset.faces import face_points
from sdapi.files import save_png_atomically, write_text_atomically
from sdapi.dataset.focal import FocalWeights, PointFinder
from sdapi.dataset.paths import PathGuard
from sdapi.dataset.progress import Progress
from sdapi.dataset.resize import (
    MulticropBounds,
    crop_and_resize,
    multicrop,
    split_image,
    split_ratio,
)

log = logging.getLogger("sdapi")

TxtAction = Literal["ignore", "copy", "prepend", "append"]


class PreprocessError(Exception):
    """What A1111 reports as ``{"info": "preprocess error: ..."}`` (with status 200)."""


@dataclass(frozen=True)
class PreprocessPlan:
    """Everything one preprocess run does; field names follow A1111's parameters without ``process_``.

    Args:
        src, dst: source and destination folders (resolved; ``dst`` is created).
        width, height: the output size.
        txt_action: what to do with an existing ``<image>.txt``: ignore, copy, prepend or append.
        keep_original_size: also save the image as it is.
        flip: also save a mirrored copy of every output.
        split: cut images longer than ``split_threshold`` times the target aspect into tiles.
        split_threshold, overlap_ratio: clamped to 0..1 and 0..0.9 as A1111 does.
        focal_crop: crop non-square images around their focal point.
        focal_weights: face, entropy and edge weights.
        focal_debug: also save the annotated focal image.
        multicrop: the auto-sized crop bounds, or None for no auto-sized crop.
    """

    src: Path
    dst: Path
    width: int = 512
    height: int = 512
    txt_action: TxtAction = "ignore"
    keep_original_size: bool = False
    flip: bool = False
    split: bool = False
    split_threshold: float = 0.5
    overlap_ratio: float = 0.2
    focal_crop: bool = False
    focal_weights: FocalWeights = FocalWeights()
    focal_debug: bool = False
    multicrop: MulticropBounds | None = None


@dataclass
class PreprocessReport:
    """What a run did.

    Args:
        images: source images processed.
        outputs: image files written.
        captions: caption files written.
        skipped: source images that gave no output (with why).
        interrupted: the run was stopped before the last image.
    """

    images: int = 0
    outputs: int = 0
    captions: int = 0
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False


@dataclass(frozen=True)
class SourceImage:
    """An image found in the source folder, at its position in the sorted listing (A1111's output index)."""

    index: int
    path: Path


def list_sources(src: Path, guard: PathGuard | None = None) -> tuple[int, list[SourceImage]]:
    """The source folder's entries in sorted order, and which of them are images.

    Args:
        src: the source folder.
        guard: when given, every entry (a symlink included) must resolve inside the allowed roots.

    Returns:
        ``(entry count, images)``; every entry counts towards the index, as A1111's does.

    Raises:
        PreprocessError: ``src`` is not a folder (A1111's ``No such file or directory``).
        PathNotAllowed: an entry escapes the roots.
    """
    try:
        names = sorted(os.listdir(src))
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise PreprocessError(str(exc)) from exc
    images = []
    for index, name in enumerate(names):
        path = src / name
        if guard is not None:
            guard.check(path)
        if _is_image(path):
            images.append(SourceImage(index, path))
    return len(names), images


def _is_image(path: Path) -> bool:
    try:
        with Image.open(path):
            return True
    except Exception:  # noqa: BLE001 - anything PIL cannot open is not an image, as in A1111's loop
        return False


def preprocess(plan: PreprocessPlan, caption: Caption | None, progress: Progress, guard: PathGuard | None = None,
               find_faces: PointFinder = face_points) -> PreprocessReport:
    """Run A1111's preprocess over ``plan.src`` into ``plan.dst``.

    Args:
        plan: what to do.
        caption: the generated caption of an output image (BLIP and/or tags), or None for none.
        progress: where progress goes; its ``should_stop`` ends the run between images.
        guard: confines every file read to the allowed roots.
        find_faces: the face detector for the focal crop.

    Raises:
        PreprocessError: source and destination are the same folder, or the source is missing.
    """
    if plan.src == plan.dst:
        raise PreprocessError("same directory specified as source and destination")
    # The sources are checked first: a refused request leaves no empty output folder behind.
    total, sources = list_sources(plan.src, guard)
    try:
        plan.dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a name too long: the request's fault
        raise PreprocessError(str(exc)) from exc
    report = PreprocessReport()
    progress.start(len(sources))
    try:
        for source in sources:
            progress.describe(f"Preprocessing [Image {source.index}/{total}]")
            if progress.should_stop():
                report.interrupted = True
                break
            _process_one(plan, source, caption, report, find_faces)
            progress.advance()
    finally:
        progress.finish()
    return report


def _process_one(plan: PreprocessPlan, source: SourceImage, caption: Caption | None, report: PreprocessReport,
                 find_faces: PointFinder) -> None:
    image = ImageOps.exif_transpose(Image.open(source.path)).convert("RGB")
    existing = _existing_caption(source.path)
    outputs = list(_outputs(plan, image, source, report, find_faces))
    subindex = 0
    for output in outputs:
        for variant in (output, ImageOps.mirror(output)) if plan.flip else (output,):
            _save(plan, variant, f"{source.index:05}-{subindex}-{source.path.stem}", caption, existing, report)
            subindex += 1
    report.images += 1


def _outputs(plan: PreprocessPlan, image: Image.Image, source: SourceImage, report: PreprocessReport,
             find_faces: PointFinder) -> Iterator[Image.Image]:
    """Every image one source gives, in A1111's order."""
    produced = False
    ratio, along_width = split_ratio(image, plan.width, plan.height)
    threshold = min(max(plan.split_threshold, 0.0), 1.0)
    if plan.split and ratio < 1.0 and ratio <= threshold:
        overlap = min(max(plan.overlap_ratio, 0.0), 0.9)
        yield from split_image(image, along_width, plan.width, plan.height, overlap)
        produced = True
    if plan.focal_crop and image.width != image.height:
        yield from focal_crop(image, plan.width, plan.height, plan.focal_weights, find_faces, plan.focal_debug)
        produced = True
    if plan.multicrop is not None:
        cropped = multicrop(image, plan.multicrop)
        if cropped is not None:
            yield cropped
        else:
            why = f"{source.path.name}: {image.width}x{image.height} fits no auto-sized crop within the error threshold"
            log.info("Skipped %s", why)
            report.skipped.append(why)
        produced = True
    if plan.keep_original_size:
        yield image
        produced = True
    if not produced:
        yield crop_and_resize(image, plan.width, plan.height)


def _existing_caption(image_path: Path) -> str | None:
    path = image_path.with_suffix(".txt")
    # A caption that is not UTF-8 is still copied, its bad bytes marked, rather than failing the whole run.
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None


def _save(plan: PreprocessPlan, image: Image.Image, stem: str, caption: Caption | None, existing: str | None,
          report: PreprocessReport) -> None:
    generated = caption(image) if caption is not None else ""
    text = combine_caption(generated, existing, plan.txt_action)
    save_png_atomically(image, plan.dst / f"{stem}.png")
    report.outputs += 1
    if text:
        write_text_atomically(plan.dst / f"{stem}.txt", text)
        report.captions += 1


def combine_caption(generated: str, existing: str | None, action: str) -> str:
    """The caption A1111 writes: the generated one, with the existing one copied, prepended or appended.

    A1111 joins with a space, not a comma, and writes nothing when the result is empty.
    """
    if existing:
        if action == "prepend":
            generated = f"{existing} {generated}"
        elif action == "append":
            generated = f"{generated} {existing}"
        elif action == "copy":
            generated = existing
    return generated.strip()
