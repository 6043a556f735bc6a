"""Caption tags and the edits of the pruning step: add a trigger word, remove, replace, dedupe, sort by frequency.

A caption is the first line of an image's caption file (what kohya trains on); tags are its comma-separated parts.
Tags are matched by ``tag_key``: case, surrounding space, underscores and bracket escapes do not matter, so
``Long_Hair`` removes ``long hair``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from sdapi.dataset.tag_format import tag_key

SEPARATOR = ", "


def split_tags(caption: str) -> list[str]:
    """The non-empty, stripped comma-separated tags of a caption."""
    return [tag.strip() for tag in caption.split(",") if tag.strip()]


def join_tags(tags: Iterable[str]) -> str:
    """Tags back into one caption line."""
    return SEPARATOR.join(tags)


@dataclass(frozen=True)
class AddTags:
    """Add tags that are not there yet, first (a trigger word, for ``keep_tokens=1``) or last.

    A tag already present elsewhere is moved to the requested end.
    """

    tags: tuple[str, ...]
    position: Literal["first", "last"] = "first"

    def apply(self, tags: list[str], frequency: Counter) -> list[str]:
        keys = {tag_key(tag) for tag in self.tags}
        rest = [tag for tag in tags if tag_key(tag) not in keys]
        return [*self.tags, *rest] if self.position == "first" else [*rest, *self.tags]


@dataclass(frozen=True)
class RemoveTags:
    """Remove tags (the trait-binding choice: traits left out are learned by the trigger word)."""

    tags: tuple[str, ...]

    def apply(self, tags: list[str], frequency: Counter) -> list[str]:
        keys = {tag_key(tag) for tag in self.tags}
        return [tag for tag in tags if tag_key(tag) not in keys]


@dataclass(frozen=True)
class ReplaceTag:
    """Replace one tag by another (or by several, comma-separated) where it occurs, keeping its place."""

    old: str
    new: str

    def apply(self, tags: list[str], frequency: Counter) -> list[str]:
        old = tag_key(self.old)
        result: list[str] = []
        for tag in tags:
            result.extend(split_tags(self.new) if tag_key(tag) == old else [tag])
        return result


@dataclass(frozen=True)
class DedupeTags:
    """Keep the first of tags that match each other."""

    def apply(self, tags: list[str], frequency: Counter) -> list[str]:
        seen: set[str] = set()
        result = []
        for tag in tags:
            if tag_key(tag) not in seen:
                seen.add(tag_key(tag))
                result.append(tag)
        return result


@dataclass(frozen=True)
class SortTags:
    """Order tags by how many captions of the dataset carry them (most first) or alphabetically.

    Args:
        by: ``frequency`` or ``alpha``; ties keep their order.
        keep_first: leading tags left in place (the trigger word).
    """

    by: Literal["frequency", "alpha"] = "frequency"
    keep_first: int = 0

    def apply(self, tags: list[str], frequency: Counter) -> list[str]:
        head, tail = tags[:self.keep_first], tags[self.keep_first:]
        if self.by == "frequency":
            tail = sorted(tail, key=lambda tag: -frequency[tag_key(tag)])
        else:
            tail = sorted(tail, key=tag_key)
        return head + tail


TagOperation = AddTags | RemoveTags | ReplaceTag | DedupeTags | SortTags


def apply_operations(tags: list[str], operations: Sequence[TagOperation], frequency: Counter) -> list[str]:
    """Apply ``operations`` in order to one caption's tags.

    Args:
        tags: the caption's tags.
        operations: the edits.
        frequency: captions per ``tag_key`` across the dataset before any edit (for ``SortTags``).
    """
    for operation in operations:
        tags = operation.apply(tags, frequency)
    return tags
