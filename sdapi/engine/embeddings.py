"""The textual-inversion embeddings a loaded model can use: A1111's ``EmbeddingDatabase``.

Each embedding file (:mod:`sdapi.engine.embedding_file`) is checked against the model: its vectors must have the
width of the model's token embeddings (SD 1.x 768, SD 2.x 1024; SDXL's two parts 768 and 1280), else it is listed
as *skipped*, as A1111 skips it. Loaded ones are found in a prompt by the token ids of their names: the lookup is
keyed by a name's first id, longer names tried first, so ``EasyNegativeV2`` wins over ``EasyNegative`` where both
match (A1111's ``find_embedding_at_position``). Two files with one name: the later in the folder order wins.

One deviation: an embedding of more than 75 vectors is skipped. A1111 loads it, and then any prompt using it makes
a chunk longer than CLIP's 77 positions and fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from sdapi.engine.embedding_file import EmbeddingData

MAX_VECTORS = 75


@dataclass(frozen=True)
class ModelWidths:
    """The token-embedding widths an embedding must have for a model.

    Args:
        single: SD 1.x/2.x: the one text encoder's width (``None`` for SDXL).
        clip_l, clip_g: SDXL's two text encoders' widths.
    """

    single: int | None = None
    clip_l: int | None = None
    clip_g: int | None = None

    @property
    def shape(self) -> int:
        """A1111's ``expected_shape``: the width, or SDXL's two widths added."""
        return self.single if self.single is not None else int(self.clip_l) + int(self.clip_g)

    def fits(self, data: EmbeddingData) -> bool:
        """Whether ``data``'s vectors can stand in a prompt of this model."""
        if data.count > MAX_VECTORS:
            return False
        if self.single is not None:
            return not isinstance(data.vectors, dict) and data.width == self.single
        if not isinstance(data.vectors, dict):
            return False
        l_part, g_part = data.vectors["clip_l"], data.vectors["clip_g"]
        return (l_part.shape[-1] == self.clip_l and g_part.shape[-1] == self.clip_g
                and l_part.shape[0] == g_part.shape[0])


@dataclass(frozen=True, eq=False)
class TextualInversion:
    """One embedding as a model uses it.

    Args:
        data: what the file holds.
        path: the file.
    """

    data: EmbeddingData
    path: Path

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def count(self) -> int:
        """Places it takes in a chunk (one per vector)."""
        return self.data.count

    def vectors_for(self, key: str | None) -> torch.Tensor:
        """The ``(n, width)`` vectors one text encoder takes (``key``: SDXL's ``clip_l``/``clip_g``)."""
        vectors = self.data.vectors
        return vectors[key] if isinstance(vectors, dict) else vectors


@dataclass
class EmbeddingDatabase:
    """Loaded and skipped embeddings of one model, and the lookup of loaded ones by token ids."""

    loaded: dict[str, TextualInversion] = field(default_factory=dict)
    skipped: dict[str, TextualInversion] = field(default_factory=dict)
    _by_first_id: dict[int, list[tuple[list[int], TextualInversion]]] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.loaded)

    def register(self, embedding: TextualInversion, ids: list[int]) -> None:
        """Make ``embedding`` findable by its name's ``ids`` (replacing an earlier one of the same name)."""
        old = self.loaded.get(embedding.name)
        if old is not None:
            for candidates in self._by_first_id.values():
                candidates[:] = [c for c in candidates if c[1] is not old]
        self.loaded[embedding.name] = embedding
        candidates = self._by_first_id.setdefault(ids[0], [])
        candidates.append((ids, embedding))
        candidates.sort(key=lambda candidate: len(candidate[0]), reverse=True)  # stable: ties keep their order

    def find_at(self, tokens: list[int], offset: int) -> tuple[TextualInversion, int] | None:
        """The embedding whose name's ids start at ``tokens[offset]``, and how many ids the name takes."""
        for ids, embedding in self._by_first_id.get(tokens[offset], ()):
            if tokens[offset:offset + len(ids)] == ids:
                return embedding, len(ids)
        return None

    def sorted(self) -> "EmbeddingDatabase":
        """This database with ``loaded`` in A1111's listing order (case-insensitive name order)."""
        self.loaded = dict(sorted(self.loaded.items(), key=lambda item: item[0].lower()))
        return self


def build_database(files: list[tuple[Path, EmbeddingData]], widths: ModelWidths,
                   tokenize: Callable[[str], list[int]]) -> EmbeddingDatabase:
    """A model's database from the readable files, in folder order.

    Args:
        files: ``(path, data)`` of every file that holds an embedding.
        widths: the model's widths.
        tokenize: the model's (first) tokenizer, without BOS/EOS (A1111 registers names with it).
    """
    database = EmbeddingDatabase()
    for path, data in files:
        embedding = TextualInversion(data, path)
        ids = tokenize(data.name) if widths.fits(data) else []
        if ids:
            database.register(embedding, ids)
        else:  # a name that tokenizes to nothing could never be found: as good as skipped
            database.skipped[data.name] = embedding
    return database.sorted()
