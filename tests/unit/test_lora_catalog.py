"""``sdapi.loras``: what ``/sdapi/v1/loras`` lists and how names, aliases and hashes resolve (pure Python)."""

from __future__ import annotations

import hashlib
import os

import pytest

from sdapi.loras import LoraCatalog, display_metadata
from sdapi.files import addnet_hash, read_safetensors_header
from tests.unit.lora_helpers import write_lora_file


def test_scan_order_names_and_extensions(tmp_path):
    root = tmp_path / "Lora"
    for rel in ("B.safetensors", "a.safetensors", "sub/c.pt", "sub/d.ckpt", "x.SAFETENSORS", "notes.txt"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".safetensors"):
            write_lora_file(path, {})
        else:
            path.write_bytes(b"not a tensor file")
    catalog = LoraCatalog(root)
    items = catalog.refresh()
    # A1111 matches extensions case-sensitively and sorts by the lower-cased full path.
    assert [i.name for i in items] == ["a", "B", "c", "d"]
    assert all(os.path.isabs(i.as_item()["path"]) for i in items)
    assert [i.alias for i in items] == ["a", "B", "c", "d"]
    assert items[2].metadata == {} and items[2].problem is None  # .pt: metadata unknown, tried at load time


def test_metadata_is_decoded_ordered_and_cover_images_dropped(tmp_path):
    raw = {"ss_network_dim": "4", "ss_tag_frequency": '{"1_x": {"cat": 2}}', "ss_output_name": "alias",
           "ss_clip_skip": "2", "ssmd_cover_images": "[...]", "ss_sd_model_name": "m.safetensors",
           "ss_bad_json": "{not json", "ss_resolution": "(512, 512)"}
    shown = display_metadata(raw)
    assert list(shown) == ["ss_sd_model_name", "ss_resolution", "ss_clip_skip", "ss_tag_frequency",
                           "ss_network_dim", "ss_output_name", "ss_bad_json"]
    assert shown["ss_tag_frequency"] == {"1_x": {"cat": 2}} and shown["ss_bad_json"] == "{not json"
    path = write_lora_file(tmp_path / "Lora" / "file.safetensors", raw)
    catalog = LoraCatalog(tmp_path / "Lora")
    (entry,) = catalog.refresh()
    assert entry.as_item() == {"name": "file", "alias": "alias", "path": str(path), "metadata": shown}


def test_lookup_by_name_or_alias_later_file_wins_and_miss_rescans(tmp_path):
    root = tmp_path / "Lora"
    write_lora_file(root / "one.safetensors", {"ss_output_name": "shared"})
    write_lora_file(root / "two.safetensors", {"ss_output_name": "shared"})
    catalog = LoraCatalog(root)
    catalog.refresh()
    assert catalog.find("one").name == "one" and catalog.find("shared").name == "two"
    assert catalog.find("three") is None
    write_lora_file(root / "three.safetensors", {})
    assert catalog.find("three").name == "three"  # A1111 rescans the folder when a name is not found


def test_shorthash_is_kohyas_data_hash_unless_the_metadata_has_one(tmp_path):
    root = tmp_path / "Lora"
    path = write_lora_file(root / "plain.safetensors", {"ss_output_name": "plain"}, payload=b"\1\2\3\4" * 4)
    write_lora_file(root / "stored.safetensors", {"sshs_model_hash": "f" * 64})
    (root / "old.pt").write_bytes(b"pickled bytes")
    catalog = LoraCatalog(root)
    catalog.refresh()
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    expected = hashlib.sha256(data[8 + header_length:]).hexdigest()
    assert addnet_hash(path) == expected
    assert catalog.shorthash(catalog.find("plain")) == expected[:12]
    assert catalog.shorthash(catalog.find("stored")) == "f" * 12
    assert catalog.shorthash(catalog.find("old")) == hashlib.sha256(b"pickled bytes").hexdigest()[:12]


def test_unreadable_and_unsupported_files_are_listed_with_a_problem(tmp_path, caplog):
    root = tmp_path / "Lora"
    root.mkdir()
    (root / "broken.safetensors").write_bytes(b"\x05\0\0\0\0\0\0\0hello")
    write_lora_file(root / "lokr.safetensors", {}, tensors=("lora_unet_a.lokr_w1", "lora_unet_a.lokr_w2"))
    write_lora_file(root / "odd.safetensors", {}, tensors=("lora_unet_a.weird",))
    catalog = LoraCatalog(root)
    with caplog.at_level("ERROR", logger="sdapi"):
        items = {i.name: i for i in catalog.refresh()}
    assert "broken.safetensors" in caplog.text and items["broken"].metadata == {}
    assert items["lokr"].problem == "a LoKr network (lokr_* tensors)"
    assert "not kohya LoRA weights" in items["odd"].problem


def test_header_reader_refuses_other_files(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_safetensors_header(path)


def test_missing_folder_lists_nothing(tmp_path):
    assert LoraCatalog(tmp_path / "absent").refresh() == []
