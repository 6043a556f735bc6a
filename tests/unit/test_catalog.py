"""Checkpoint names, titles, hashes and aliases as A1111 computes them."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from sdapi.checkpoints import CheckpointCatalog, HashCache
from sdapi.files import legacy_hash, sha256_of_file


@pytest.fixture()
def models(tmp_path):
    root = tmp_path / "models" / "Stable-diffusion"
    (root / "sub").mkdir(parents=True)
    payload = os.urandom(0x100000 + 0x20000)
    (root / "b-model.safetensors").write_bytes(payload)
    (root / "sub" / "A_model.ckpt").write_bytes(b"x" * 100)
    (root / "ignored.vae.safetensors").write_bytes(b"v")
    (root / "notes.txt").write_text("n")
    return root


def catalog_for(models, tmp_path, **kw):
    return CheckpointCatalog(models, HashCache(tmp_path / "cache.json"), **kw)


def test_scan_names_sorting_and_unhashed_titles(models, tmp_path):
    catalog = catalog_for(models, tmp_path)
    items = [i.as_item() for i in catalog.refresh()]
    assert [i["title"] for i in items] == ["b-model.safetensors", "sub/A_model.ckpt"]
    assert items[1]["model_name"] == "sub_A_model"
    assert items[0]["hash"] is None and items[0]["sha256"] is None and items[0]["config"] is None
    assert items[0]["filename"] == str((models / "b-model.safetensors").resolve())


def test_hash_is_computed_once_and_cached_on_disk(models, tmp_path):
    catalog = catalog_for(models, tmp_path)
    info = catalog.refresh()[0]
    sha = catalog.ensure_hashed(info)
    assert sha == hashlib.sha256((models / "b-model.safetensors").read_bytes()).hexdigest()
    assert info.title == f"b-model.safetensors [{sha[:10]}]" and info.shorthash == sha[:10]
    cache = json.loads((tmp_path / "cache.json").read_text())
    assert cache["hashes"]["checkpoint/b-model.safetensors"]["sha256"] == sha
    # A new catalog (a restart) knows the hash without reading the file again.
    again = catalog_for(models, tmp_path).refresh()[0]
    assert again.sha256 == sha
    # A newer file invalidates the entry.
    later = time.time() + 10
    os.utime(models / "b-model.safetensors", (later, later))
    assert catalog_for(models, tmp_path).refresh()[0].sha256 is None


def test_aliases_match_a1111(models, tmp_path):
    catalog = catalog_for(models, tmp_path)
    info = catalog.refresh()[0]
    legacy = legacy_hash(info.filename)
    assert len(legacy) == 8
    data = (models / "b-model.safetensors").read_bytes()
    assert legacy == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    for alias in ("b-model", "b-model.safetensors", legacy, f"b-model.safetensors [{legacy}]"):
        assert catalog.find(alias) is info
    assert catalog.find(sha256_of_file(info.filename)[:10]) is None  # not hashed yet, as A1111
    catalog.ensure_hashed(info)
    for alias in (info.shorthash, info.sha256, info.title):
        assert catalog.find(alias) is info
    assert catalog.find("b-mod") is None and catalog.find(None) is None


def test_ckpt_flag_is_listed_first_and_yaml_is_reported(models, tmp_path):
    (models / "sub" / "A_model.yaml").write_text("model: {}")
    catalog = catalog_for(models, tmp_path, first=models / "sub" / "A_model.ckpt")
    items = catalog.refresh()
    assert items[0].name == "sub/A_model.ckpt" and items[0].config.endswith("A_model.yaml")


def test_fallback_dirs_only_when_models_folder_is_empty(tmp_path, models):
    empty = tmp_path / "empty"
    empty.mkdir()
    catalog = CheckpointCatalog(empty, HashCache(tmp_path / "c.json"), fallback_dirs=(models / "sub",))
    assert [i.name for i in catalog.refresh()] == ["A_model.ckpt"]
    catalog = CheckpointCatalog(models, HashCache(tmp_path / "c.json"), fallback_dirs=(tmp_path / "nothing",))
    assert len(catalog.refresh()) == 2
