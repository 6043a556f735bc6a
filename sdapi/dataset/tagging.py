"""Tagging every image of a dataset with a WD14 tagger, writing ``<image>.txt`` beside each (kohya's tagger script)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from sdapi.dataset.captions import Caption
from sdapi.files import write_text_atomically
from sdapi.dataset.folder import DatasetDir, read_caption
from sdapi.dataset.progress import Progress
from sdapi.dataset.tag_format import tag_key
from sdapi.dataset.tags import join_tags, split_tags

ExistingCaption = Literal["overwrite", "append", "skip"]


@dataclass
class TaggingReport:
    """What a tagging run did.

    Args:
        tagged: caption files written.
        skipped: images left alone (they had a caption and ``existing`` was ``skip``).
        captions: each written caption by image path.
        interrupted: the run was stopped before the last image.
    """

    tagged: int = 0
    skipped: int = 0
    captions: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def merged_caption(new: str, existing: str | None, mode: ExistingCaption) -> str:
    """``append`` keeps the existing tags first and adds only the new ones they lack (kohya's ``--append_tags``)."""
    if mode != "append" or not existing:
        return new
    present = split_tags(existing)
    keys = {tag_key(tag) for tag in present}
    return join_tags(present + [tag for tag in split_tags(new) if tag_key(tag) not in keys])


def tag_dataset(dirs: list[DatasetDir], caption: Caption, progress: Progress,
                existing: ExistingCaption = "overwrite") -> TaggingReport:
    """Caption every image of ``dirs``.

    Args:
        dirs: the scanned dataset.
        caption: the tags of one image, joined (``sdapi.dataset.captions.tags_caption``).
        progress: where progress goes; its ``should_stop`` ends the run between images.
        existing: what to do with a caption file already there: overwrite, append new tags, or skip the image.
    """
    entries = [entry for folder in dirs for entry in folder.images]
    report = TaggingReport()
    progress.start(len(entries))
    try:
        for number, entry in enumerate(entries):
            progress.describe(f"Tagging [Image {number}/{len(entries)}]")
            if progress.should_stop():
                report.interrupted = True
                break
            present = read_caption(entry.caption_file)
            if present is not None and existing == "skip":
                report.skipped += 1
            else:
                with Image.open(entry.image) as image:
                    text = merged_caption(caption(image), present, existing)
                write_text_atomically(entry.caption_file, text)
                report.captions[str(entry.image)] = text
                report.tagged += 1
            progress.advance()
    finally:
        progress.finish()
    return report
