"""Textual-inversion embeddings below HTTP: every file layout A1111 reads, the folder walk, the database lookup, and
how an embedding takes places in A1111's 75-token chunks."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from sdapi.embeddings import scan_embedding_files, ti_hashes_text
from sdapi.checkpoints import HashCache
from sdapi.engine.conditioning import CHUNK_LENGTH, EMBEDDING_PLACEHOLDER, split_into_chunks
from sdapi.engine.embedding_file import BadEmbedding, read_embedding_file
from sdapi.engine.embeddings import MAX_VECTORS, ModelWidths, build_database
from sdapi.files import sha256_of_file
from tests.unit.embedding_helpers import (
    seeded,
    write_a1111_pt,
    write_diffusers_bin,
    write_kohya,
    write_png_pixels,
    write_png_text,
    write_sdxl,
)

BOS, EOS, COMMA = 100, 101, 102


def test_a1111_pt_is_named_by_its_file_and_keeps_its_training_facts(tmp_path):
    vectors = seeded(3, 32, 0)
    data = read_embedding_file(write_a1111_pt(tmp_path / "style.pt", vectors))
    assert data.name == "style"  # v1.2.1 takes a .pt's name from the file, not from inside it
    assert (data.count, data.width, data.step, data.sd_checkpoint, data.sd_checkpoint_name) == (
        3, 32, 500, "abcdef1234", "demo-sd15")
    assert torch.equal(data.vectors, vectors)


def test_a_diffusers_concept_vector_becomes_one_row(tmp_path):
    vector = seeded(1, 32, 1)[0]
    data = read_embedding_file(write_diffusers_bin(tmp_path / "concept.bin", vector))
    assert data.vectors.shape == (1, 32) and torch.equal(data.vectors[0], vector) and data.step is None


def test_kohya_and_sdxl_safetensors(tmp_path):
    data = read_embedding_file(write_kohya(tmp_path / "kohya.safetensors", seeded(4, 32, 2)))
    assert (data.count, data.width) == (4, 32)
    sdxl = read_embedding_file(write_sdxl(tmp_path / "xl.safetensors", seeded(2, 32, 3), seeded(2, 48, 4)))
    assert (sdxl.count, sdxl.width) == (2, 80) and set(sdxl.vectors) == {"clip_l", "clip_g"}


@pytest.mark.parametrize("write", [write_png_text, write_png_pixels])
def test_png_embeddings_take_the_name_inside(tmp_path, write):
    vectors = seeded(2, 32, 5)
    data = read_embedding_file(write(tmp_path / "picture.png", vectors, "inside-name"))
    assert data.name == "inside-name" and data.step == 500
    assert torch.allclose(data.vectors, vectors) and data.vectors.dtype == torch.float32


def test_pictures_without_embedding_and_previews_are_not_embeddings(tmp_path):
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "photo.png")
    assert read_embedding_file(tmp_path / "photo.png") is None
    write_png_text(tmp_path / "style.preview.png", seeded(1, 32, 0), "style")
    assert read_embedding_file(tmp_path / "style.preview.png") is None


def test_unreadable_files_say_why(tmp_path):
    torch.save({"a": torch.zeros(2, 32), "b": torch.zeros(2, 32)}, tmp_path / "two.pt")
    with pytest.raises(BadEmbedding, match="multiple terms"):
        read_embedding_file(tmp_path / "two.pt")
    torch.save({"string_to_param": {"*": torch.zeros(1, 32)}, "object": SimpleNamespace()}, tmp_path / "obj.pt")
    with pytest.raises(BadEmbedding, match="weights_only"):
        read_embedding_file(tmp_path / "obj.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(BadEmbedding):
        read_embedding_file(tmp_path / "junk.safetensors")


def test_folder_walk_is_sorted_skips_empty_files_and_follows_links_once(tmp_path):
    (tmp_path / "b").mkdir()
    write_kohya(tmp_path / "b" / "z.safetensors", seeded(1, 32, 0))
    write_kohya(tmp_path / "a.safetensors", seeded(1, 32, 0))
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    os.symlink(tmp_path, tmp_path / "b" / "loop")
    assert [p.relative_to(tmp_path).as_posix() for p in scan_embedding_files([tmp_path])] == [
        "a.safetensors", "b/z.safetensors"]


def _database(entries, widths=ModelWidths(single=32)):
    def tokenize(name):  # one id per character: names sharing a start share first ids
        return [ord(c) for c in name]
    return build_database([(f"/e/{data.name}", data) for data in entries], widths, tokenize)


def _data(name, count, width=32):
    from sdapi.engine.embedding_file import EmbeddingData
    return EmbeddingData(name=name, vectors=torch.zeros(count, width))


def test_database_skips_what_does_not_fit_and_prefers_longer_names():
    database = _database([_data("ab", 1), _data("abc", 2), _data("wide", 1, 768), _data("many", MAX_VECTORS + 1),
                          _data("Zed", 1)])
    assert list(database.loaded) == ["ab", "abc", "Zed"] and list(database.skipped) == ["wide", "many"]
    tokens = [ord(c) for c in "xabcab"]
    assert database.find_at(tokens, 0) is None
    assert (database.find_at(tokens, 1)[0].name, database.find_at(tokens, 1)[1]) == ("abc", 3)
    assert database.find_at(tokens, 4)[0].name == "ab"


def test_sdxl_needs_both_parts_of_the_right_widths():
    from sdapi.engine.embedding_file import EmbeddingData
    widths = ModelWidths(clip_l=32, clip_g=48)
    good = EmbeddingData("xl", {"clip_l": torch.zeros(2, 32), "clip_g": torch.zeros(2, 48)})
    database = _database([good, _data("sd1", 2)], widths)
    assert list(database.loaded) == ["xl"] and list(database.skipped) == ["sd1"] and widths.shape == 80


def _emb(count):
    return SimpleNamespace(count=count)


def _find(table):
    """A finder for token id -> embedding (names one id long)."""
    return lambda tokens, offset: (table[tokens[offset]], 1) if tokens[offset] in table else None


def test_an_embedding_counts_one_place_per_vector_with_its_weight():
    emb = _emb(3)
    (chunk,) = split_into_chunks([([1, 2], 1.0), ([7, 3], 1.2)], COMMA, EOS, BOS, find=_find({7: emb}))
    assert chunk.tokens[:7] == [BOS, 1, 2] + [EMBEDDING_PLACEHOLDER] * 3 + [3]
    assert chunk.weights[:7] == [1.0, 1.0, 1.0, 1.2, 1.2, 1.2, 1.2]
    assert chunk.fixes == [(2, emb)] and len(chunk.tokens) == CHUNK_LENGTH + 2


@pytest.mark.parametrize("before, chunks, offset", [(73, 1, 73), (74, 2, 0)])
def test_an_embedding_that_would_cross_the_chunk_end_starts_the_next_chunk(before, chunks, offset):
    emb = _emb(2)
    result = split_into_chunks([([1] * before + [7], 1.0)], COMMA, EOS, BOS, find=_find({7: emb}))
    assert len(result) == chunks
    assert result[-1].fixes == [(offset, emb)]
    if chunks == 2:  # the first chunk is padded where the embedding would not fit, as after BREAK
        assert result[0].tokens == [BOS] + [1] * 74 + [EOS, EOS]


def test_ti_hashes_text_uses_12_hex_digits_and_drops_separators(tmp_path):
    path = write_kohya(tmp_path / "e.safetensors", seeded(1, 32, 0))
    text = ti_hashes_text([("a:b,c", path), ("gone", tmp_path / "missing")], HashCache(tmp_path / "cache.json"))
    assert text == f"abc: {sha256_of_file(path)[:12]}"
