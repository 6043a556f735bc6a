"""Per-step caption handling, as kohya applies it: prefix/suffix, dropout, kept tokens, tag dropout, shuffle.

``keep_tokens`` counts separator-delimited tags (not CLIP tokens); ``keep_tokens_separator`` (e.g. ``|||``)
marks the fixed part explicitly instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class CaptionRules:
    """The caption fields of a request.

    Args:
        separator: ``caption_separator``.
        shuffle: ``shuffle_caption``.
        keep_tokens: tags kept in place at the front.
        keep_tokens_separator: an explicit fixed/flexible divider.
        prefix, suffix: ``caption_prefix`` / ``caption_suffix``.
        dropout_rate: chance the whole caption becomes empty.
        dropout_every_n_epochs: empty captions on every n-th epoch.
        tag_dropout_rate: chance each flexible tag is dropped.
    """

    separator: str = ","
    shuffle: bool = False
    keep_tokens: int = 0
    keep_tokens_separator: str = ""
    prefix: str | None = None
    suffix: str | None = None
    dropout_rate: float = 0.0
    dropout_every_n_epochs: int = 0
    tag_dropout_rate: float = 0.0


def _split(text: str, separator: str) -> list[str]:
    return [t.strip() for t in text.split(separator) if t.strip()]


def process_caption(caption: str, rules: CaptionRules, rng: random.Random, epoch: int) -> str:
    """The caption one training step sees.

    Args:
        caption: the image's caption.
        rules: the request's caption fields.
        rng: the job's caption RNG (seeded, so a job is reproducible).
        epoch: 1-based epoch (for ``dropout_every_n_epochs``).

    Returns:
        The processed caption (``""`` when dropped).
    """
    if rules.prefix:
        caption = f"{rules.prefix} {caption}"
    if rules.suffix:
        caption = f"{caption} {rules.suffix}"
    every = rules.dropout_every_n_epochs
    if (every > 0 and epoch % every == 0) or (rules.dropout_rate > 0 and rng.random() < rules.dropout_rate):
        return ""
    if rules.keep_tokens_separator and rules.keep_tokens_separator in caption:
        fixed_text, flexible_text = caption.split(rules.keep_tokens_separator, 1)
        fixed, flexible = _split(fixed_text, rules.separator), _split(flexible_text, rules.separator)
    else:
        tags = _split(caption, rules.separator)
        fixed, flexible = tags[:rules.keep_tokens], tags[rules.keep_tokens:]
    if rules.tag_dropout_rate > 0:
        flexible = [t for t in flexible if rng.random() >= rules.tag_dropout_rate]
    if rules.shuffle:
        rng.shuffle(flexible)
    return ", ".join(fixed + flexible)
