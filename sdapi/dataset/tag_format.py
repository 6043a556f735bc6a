"""Turning tagger scores into a caption: thresholds, rating, order, underscores and escaping.

Two conventions meet here: kohya's/SmilingWolf's WD14 defaults (general 0.35, character 0.85, no rating, spaces) for
dataset captions, and A1111's deepbooru options for ``/interrogate`` and preprocess captions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from sdapi.dataset.tagger import CHARACTER, RATING, TagScores

KAOMOJI = frozenset({
    "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9", ">_o", "@_@", "^_^",
    "o_o", "u_u", "x_x", "|_|", "||_||",
})
"""Danbooru tags whose underscore is part of the face they draw (the WD14 tagger demo's list)."""

SPECIAL = re.compile(r"([\\()])")
"""What A1111's prompt parser would read as emphasis (and the escape character itself)."""

Order = Literal["score", "alpha", "model"]


@dataclass(frozen=True)
class TagFormat:
    """How to turn scores into tags.

    Args:
        general_threshold: general (and other non-character) tags at or above this are kept.
        character_threshold: character tags at or above this are kept.
        rating: put the most likely rating tag first (WD14 ratings: general, sensitive, questionable, explicit).
        replace_underscores: ``long_hair`` becomes ``long hair``, except kaomoji and tags of 3 characters or less.
        escape_brackets: ``\\(`` and ``\\)`` so A1111 reads brackets literally, not as emphasis.
        order: ``score`` (most likely first), ``alpha`` or ``model`` (the CSV's order).
        character_first: character tags before general ones (after the rating).
        undesired: tags never emitted, compared without case, underscores or escapes.
        ranks: write ``(tag:0.912)`` as A1111's ``interrogate_return_ranks`` does.
    """

    general_threshold: float = 0.35
    character_threshold: float = 0.85
    rating: bool = False
    replace_underscores: bool = True
    escape_brackets: bool = False
    order: Order = "score"
    character_first: bool = False
    undesired: frozenset[str] = field(default_factory=frozenset)
    ranks: bool = False


def tag_key(tag: str) -> str:
    """The form two spellings of a tag share: stripped, lower case, unescaped, underscores as spaces."""
    return tag.strip().lower().replace("\\(", "(").replace("\\)", ")").replace("_", " ")


def spaced(tag: str) -> str:
    """``long_hair`` → ``long hair``; kaomoji such as ``^_^`` and very short tags stay as they are."""
    if tag in KAOMOJI or len(tag) <= 3:
        return tag
    return tag.replace("_", " ")


def escaped(tag: str) -> str:
    """``ganyu (genshin impact)`` → ``ganyu \\(genshin impact\\)``."""
    return SPECIAL.sub(r"\\\1", tag)


def select_tags(result: TagScores, fmt: TagFormat) -> list[str]:
    """The tags of one image, formatted.

    Args:
        result: the tagger's scores.
        fmt: thresholds and formatting.

    Returns:
        Tags in caption order (join them with ``", "``).
    """
    undesired = {tag_key(tag) for tag in fmt.undesired}
    picked: list[tuple[int, str, float]] = []
    for index, (label, score) in enumerate(zip(result.labels, result.scores.tolist())):
        if label.category == RATING or tag_key(label.name) in undesired:
            continue
        threshold = fmt.character_threshold if label.category == CHARACTER else fmt.general_threshold
        if score >= threshold:
            picked.append((index, label.name, score))
    picked = _ordered(picked, fmt.order)
    if fmt.character_first:
        picked.sort(key=lambda item: result.labels[item[0]].category != CHARACTER)
    rating = _rating(result, undesired) if fmt.rating else None
    if rating is not None:
        picked.insert(0, rating)
    return [_formatted(name, score, fmt) for _, name, score in picked]


def _ordered(picked: list[tuple[int, str, float]], order: Order) -> list[tuple[int, str, float]]:
    if order == "score":
        return sorted(picked, key=lambda item: -item[2])
    if order == "alpha":
        return sorted(picked, key=lambda item: item[1])
    return picked


def _rating(result: TagScores, undesired: set[str]) -> tuple[int, str, float] | None:
    ratings = [(i, label.name, float(result.scores[i])) for i, label in enumerate(result.labels)
               if label.category == RATING]
    if not ratings:
        return None
    best = max(ratings, key=lambda item: item[2])
    return None if tag_key(best[1]) in undesired else best


def _formatted(name: str, score: float, fmt: TagFormat) -> str:
    tag = spaced(name) if fmt.replace_underscores else name
    if fmt.escape_brackets:
        tag = escaped(tag)
    return f"({tag}:{score:.3f})" if fmt.ranks else tag


def a1111_deepbooru_format(options) -> TagFormat:
    """The format A1111's deepbooru options ask for (``/interrogate`` and preprocess captions).

    ``interrogate_deepbooru_score_threshold`` is the general threshold; character tags also need WD14's own
    0.85, since WD14 scores characters higher than deepbooru did. Ratings are never written, as in A1111.

    Args:
        options: ``sdapi.options.Options``.
    """
    threshold = float(options.get("interrogate_deepbooru_score_threshold"))
    filtered = frozenset(tag for tag in str(options.get("deepbooru_filter_tags")).split(",") if tag.strip())
    return TagFormat(
        general_threshold=threshold, character_threshold=max(threshold, 0.85), rating=False,
        replace_underscores=bool(options.get("deepbooru_use_spaces")), escape_brackets=bool(options.get("deepbooru_escape")),
        order="alpha" if options.get("deepbooru_sort_alpha") else "score", undesired=filtered,
        ranks=bool(options.get("interrogate_return_ranks")),
    )
