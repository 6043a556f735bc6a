"""Editing every caption file of a dataset: plan the changes (a dry run shows them), then write each one atomically.

Only the first line of a caption file is edited (it is the caption kohya reads); any further lines are kept.
Images without a caption file are left alone: kohya captions them with their folder's class tokens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sdapi.files import write_text_atomically
from sdapi.dataset.folder import DatasetDir, training_caption
from sdapi.dataset.tag_format import tag_key
from sdapi.dataset.tags import TagOperation, apply_operations, join_tags, split_tags
from sdapi.errors import InvalidRequest


@dataclass(frozen=True)
class CaptionChange:
    """One caption file whose tags the operations change.

    Args:
        file: the caption file.
        before, after: its caption line.
        added, removed: tags that appear only after, or only before.
        rest: the file's text after the first line (kept as it is).
    """

    file: Path
    before: str
    after: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    rest: str


def key_frequency(dirs: list[DatasetDir]) -> Counter:
    """How many training captions of the dataset carry each tag, by ``tag_key``."""
    counts: Counter = Counter()
    for folder in dirs:
        for entry in folder.images:
            counts.update({tag_key(tag) for tag in split_tags(training_caption(entry, folder))})
    return counts


def plan_changes(dirs: list[DatasetDir], operations: Sequence[TagOperation]) -> list[CaptionChange]:
    """The caption files ``operations`` would change, with before and after; nothing is written.

    Args:
        dirs: the scanned dataset.
        operations: the edits, applied in order to each caption.

    Raises:
        InvalidRequest: a caption file that is not UTF-8.
    """
    frequency = key_frequency(dirs)
    changes = []
    for folder in dirs:
        for entry in folder.images:
            if not entry.caption_file.is_file():
                continue
            first, rest = _split_first_line(_read_utf8(entry.caption_file))
            before = split_tags(first)
            after = apply_operations(list(before), operations, frequency)
            if after != before:
                changes.append(CaptionChange(
                    file=entry.caption_file, before=first.strip(), after=join_tags(after),
                    added=_missing_from(after, before), removed=_missing_from(before, after), rest=rest))
    return changes


def write_changes(changes: Sequence[CaptionChange]) -> None:
    """Write each planned change, each file replaced in one step."""
    for change in changes:
        write_text_atomically(change.file, change.after + change.rest)


def _read_utf8(path: Path) -> str:
    """The caption file's text; a file that is not UTF-8 is refused rather than rewritten with its bytes lost."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{path} is not UTF-8 text: {exc}") from exc


def _split_first_line(text: str) -> tuple[str, str]:
    first, newline, rest = text.partition("\n")
    ending = "\r" if first.endswith("\r") else ""
    return first.removesuffix("\r"), (ending + newline + rest) if newline else ""


def _missing_from(tags: list[str], other: list[str]) -> tuple[str, ...]:
    keys = {tag_key(tag) for tag in other}
    return tuple(tag for tag in tags if tag_key(tag) not in keys)
