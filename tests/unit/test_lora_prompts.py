"""``<lora:…>`` tags: parsing, multipliers, lookup by name/alias, ``sd_lora``, ``Lora hashes`` (no torch work)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sdapi.loras import LoraCatalog
from sdapi.options import Options
from sdapi.prompts.extra_networks import ExtraNetworkParams, parse_prompt, parse_prompts
from sdapi.lora_tags import LoraTag, parse_lora_tag, parse_lora_tags, select_loras
from tests.unit.lora_helpers import write_lora_file


@pytest.fixture()
def catalog(tmp_path) -> LoraCatalog:
    root = tmp_path / "Lora"
    write_lora_file(root / "a.safetensors", {"ss_output_name": "a-alias", "sshs_model_hash": "ab" * 32})
    write_lora_file(root / "sub" / "b.safetensors", {})
    write_lora_file(root / "loha.safetensors", {}, tensors=("lora_unet_a.hada_w1_a", "lora_unet_a.hada_w1_b"))
    catalog = LoraCatalog(root)
    catalog.refresh()
    return catalog


@pytest.fixture()
def options() -> Options:
    return Options(None)


# -- tags ---------------------------------------------------------------------------------------------------


def test_tags_are_removed_and_collected_by_network_type():
    text, found = parse_prompt("a cat <lora:a:0.5>, <hypernet:h:1> on <lora:b>")
    assert text == "a cat ,  on "
    assert found == {"lora": [ExtraNetworkParams(("a", "0.5")), ExtraNetworkParams(("b",))],
                     "hypernet": [ExtraNetworkParams(("h", "1"))]}


def test_the_batch_takes_its_networks_from_the_first_prompt_only():
    prompts, networks = parse_prompts(["x <lora:a:1>", "y <lora:b:1>"])
    assert prompts == ["x ", "y "]
    assert [p.items for p in networks["lora"]] == [("a", "1")]
    assert parse_prompts([]) == ([], {})


@pytest.mark.parametrize("tag, expected", [
    ("<lora:a:0.5>", LoraTag("a", 0.5, 0.5)),
    ("<lora:a>", LoraTag("a", 1.0, 1.0)),  # A1111: 1.0, not extra_networks_default_multiplier
    ("<lora:a:0.5:1.0>", LoraTag("a", 0.5, 1.0)),
    ("<lora:a:-0.75>", LoraTag("a", -0.75, -0.75)),
    ("<lora:a:te=0.2:unet=0.3>", LoraTag("a", 0.2, 0.3)),
    ("<lora:a:0.4:unet=0>", LoraTag("a", 0.4, 0.0)),
])
def test_tag_multipliers(tag, expected):
    _, found = parse_prompt(tag)
    assert parse_lora_tag(found["lora"][0]) == expected


def test_malformed_tags_are_skipped_with_a_log_line(caplog):
    _, found = parse_prompt("<lora:a:lots> <lora:b:0.5> <lora::1>")
    with caplog.at_level(logging.WARNING, logger="sdapi"):
        assert parse_lora_tags(found["lora"]) == [LoraTag("b", 0.5, 0.5)]
    assert "<lora:a:lots> was ignored" in caplog.text and "<lora::1> was ignored" in caplog.text


def test_several_loras_negative_weight_alias_and_unknown(catalog, options, caplog):
    _, found = parse_prompt("<lora:a-alias:0.5> <lora:b:-1:2> <lora:nope:1>")
    with caplog.at_level(logging.WARNING, logger="sdapi"):
        selection = select_loras(found, catalog, options)
    assert [(Path(a.path).name, a.name, a.te_multiplier, a.unet_multiplier) for a in selection.activations] == [
        ("a.safetensors", "a-alias", 0.5, 0.5), ("b.safetensors", "b", -1.0, 2.0)]
    assert "Couldn't find Lora with name nope" in caplog.text
    assert list(selection.hashes) == ["a-alias", "b"]
    assert selection.hashes["a-alias"] == "ab" * 6  # sshs_model_hash from the metadata, 12 hex
    assert selection.hashes_text() == f"a-alias: {'ab' * 6}, b: {selection.hashes['b']}"


def test_unsupported_files_are_skipped_with_an_error_line(catalog, options, caplog):
    _, found = parse_prompt("<lora:loha:1>")
    with caplog.at_level(logging.ERROR, logger="sdapi"):
        selection = select_loras(found, catalog, options)
    assert selection.activations == [] and selection.hashes_text() is None
    assert "a LoHa network (hada_* tensors)" in caplog.text


def test_other_networks_are_stripped_and_logged(catalog, options, caplog):
    _, found = parse_prompt("<hypernet:h:1>")
    with caplog.at_level(logging.WARNING, logger="sdapi"):
        assert select_loras(found, catalog, options).activations == []
    assert "Skipping unknown extra network: hypernet" in caplog.text


def test_hash_names_lose_colons_and_commas(tmp_path, options):
    write_lora_file(tmp_path / "Lora" / "we,ird.safetensors", {})
    catalog = LoraCatalog(tmp_path / "Lora")
    catalog.refresh()
    _, found = parse_prompt("<lora:we,ird:1>")
    selection = select_loras(found, catalog, options)
    assert [a.name for a in selection.activations] == ["we,ird"]
    assert list(selection.hashes) == ["weird"]


def test_sd_lora_option_adds_its_lora_once(catalog, options):
    options.set("sd_lora", "b")
    options.set("extra_networks_default_multiplier", 0.7)
    selection = select_loras({}, catalog, options)
    assert [(a.name, a.te_multiplier) for a in selection.activations] == [("b", 0.7)]
    assert selection.appended_tag == "<lora:b:0.7>"
    _, found = parse_prompt("<lora:b:0.2>")
    mentioned = select_loras(found, catalog, options)
    assert [(a.name, a.te_multiplier) for a in mentioned.activations] == [("b", 0.2)]
    assert mentioned.appended_tag == ""
    options.set("sd_lora", "missing")
    assert select_loras({}, catalog, options).activations == []


def test_without_a_catalog_tags_are_only_stripped(options):
    _, found = parse_prompt("<lora:a:1>")
    assert select_loras(found, None, options).activations == []
