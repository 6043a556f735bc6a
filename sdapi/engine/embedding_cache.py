"""Embedding files read once per version, and each loaded model's database over them.

A1111 reloads its embeddings folder when the folder's mtime changes; here every job names its files and each file
is read again only when its size or mtime changed, so an edited file is seen too. A model's database is rebuilt
only when the set of file versions changed.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sdapi.engine.api import EmbeddingInfo, EmbeddingListing, GenerationJob
from sdapi.engine.embedding_file import BadEmbedding, EmbeddingData, read_embedding_file
from sdapi.engine.embeddings import EmbeddingDatabase, TextualInversion, build_database
from sdapi.engine.sampling.conds import schedule_length
from sdapi.prompts.composable import composable_batch
from sdapi.prompts.scheduling import prompt_schedule

log = logging.getLogger("sdapi")

FileVersion = tuple[Path, int, int]  # path, mtime_ns, size


def _version(path: Path) -> FileVersion | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return path, stat.st_mtime_ns, stat.st_size


class EmbeddingFiles:
    """Parsed embedding files (or why they could not be), keyed by file version."""

    def __init__(self):
        self._read: dict[Path, tuple[FileVersion, EmbeddingData | None]] = {}
        self._lock = threading.Lock()

    def versions(self, paths: tuple[Path, ...]) -> tuple[FileVersion, ...]:
        """The current version of each file that still exists."""
        return tuple(v for v in (_version(Path(p)) for p in paths) if v is not None)

    def read(self, versions: tuple[FileVersion, ...]) -> list[tuple[Path, EmbeddingData]]:
        """Every file's embedding, in order; files without one are left out (a bad one is logged once)."""
        found = []
        with self._lock:
            for version in versions:
                path = version[0]
                cached = self._read.get(path)
                if cached is None or cached[0] != version:
                    cached = (version, self._parse(path))
                    self._read[path] = cached
                if cached[1] is not None:
                    found.append((path, cached[1]))
            wanted = {version[0] for version in versions}
            for gone in [p for p in self._read if p not in wanted]:
                del self._read[gone]
        return found

    @staticmethod
    def _parse(path: Path) -> EmbeddingData | None:
        try:
            return read_embedding_file(path)
        except BadEmbedding as exc:
            log.error("Error loading embedding %s: %s", path.name, exc)
            return None

    def database(self, model, paths: tuple[Path, ...]) -> EmbeddingDatabase:
        """``model``'s database over ``paths`` (rebuilt when a file version changed; kept on the model)."""
        versions = self.versions(paths)
        cached = model.embeddings
        if cached is not None and cached[0] == versions:
            return cached[1]
        encoder = model.encoder
        database = build_database(self.read(versions), encoder.widths(), encoder.tokenize)
        if database.loaded or database.skipped:
            log.info("Textual inversion embeddings loaded(%d): %s", len(database.loaded), ", ".join(database.loaded))
            if database.skipped:
                log.info("Textual inversion embeddings skipped(%d): %s", len(database.skipped),
                         ", ".join(database.skipped))
        model.embeddings = (versions, database)
        return database


def listing(database: EmbeddingDatabase) -> EmbeddingListing:
    """A database as plain data (``/sdapi/v1/embeddings``)."""
    def info(embedding: TextualInversion) -> EmbeddingInfo:
        data = embedding.data
        return EmbeddingInfo(name=data.name, filename=embedding.path, step=data.step,
                             sd_checkpoint=data.sd_checkpoint, sd_checkpoint_name=data.sd_checkpoint_name,
                             shape=data.width, vectors=data.count)

    return EmbeddingListing(tuple(info(e) for e in database.loaded.values()),
                            tuple(info(e) for e in database.skipped.values()))


def encoded_texts(prompts: list[str], steps: int, split_and: bool) -> list[str]:
    """The distinct texts A1111 encodes for ``prompts``: each ``AND`` part (positives only) at each step of its
    prompt schedule."""
    sources = composable_batch(list(dict.fromkeys(prompts)))[1] if split_and else list(dict.fromkeys(prompts))
    return list(dict.fromkeys(text for source in sources for _, text in prompt_schedule(source, steps)))


def used_names(encoder, job: GenerationJob) -> list[str]:
    """:meth:`sdapi.engine.api.Engine.embeddings_used` for an encoder that has the job's database."""
    p = job.params
    first = getattr(encoder, "clip_l", encoder)  # SDXL's encoders find names in the same places
    steps = schedule_length(p.sampler, p.steps, p.fix_second_order_schedule)

    def names(texts: list[str]) -> list[str]:
        used: dict[str, None] = {}
        for text in texts:
            for chunk in first.chunks(text, p.comma_backtrack, p.emphasis):
                used.update((embedding.name, None) for _, embedding in chunk.fixes)
        return list(used)

    return (names(encoded_texts(p.prompts, steps, split_and=True))
            + names(encoded_texts(p.negative_prompts, steps, split_and=False)))
