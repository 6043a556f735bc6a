"""The generated caption of one image: a BLIP sentence, tagger tags, or both (``"<sentence>, <tags>"``, as A1111)."""

from __future__ import annotations

from typing import Callable

from PIL import Image

from sdapi.dataset.tag_format import TagFormat, select_tags
from sdapi.dataset.tagger import WD14Tagger

Caption = Callable[[Image.Image], str]


def tags_caption(tagger: WD14Tagger, fmt: TagFormat) -> Caption:
    """A caption function writing the tagger's tags, comma separated."""
    return lambda image: ", ".join(select_tags(tagger.predict(image), fmt))


def combined_caption(sentence: Caption | None, tags: Caption | None) -> Caption | None:
    """BLIP's sentence, then the tags after ``", "``; None when neither is asked for."""
    if sentence is None and tags is None:
        return None

    def caption(image: Image.Image) -> str:
        text = sentence(image) if sentence is not None else ""
        if tags is not None:
            text = f"{text}, {tags(image)}" if text else tags(image)
        return text

    return caption
