"""LoRA end to end through HTTP: ``/sdapi/v1/loras``, ``/refresh-loras`` and ``<lora:…>`` in txt2img prompts.

Images are compared by decoded pixels (the PNG text chunk differs when the prompt does). The demo LoRA
(``models/Lora/demo-lora.safetensors``, written with the demo checkpoints) has non-zero ``up`` weights, so it
visibly changes the tiny model's images.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.engine.demo_lora import kohya_layers, kohya_metadata, random_lora_tensors, write_kohya_lora
from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.params import LoraActivation
from tests.conftest import decode_png, load_recording, txt2img
from tests.unit.lora_helpers import write_torch_lora

MODEL = {"sd_model_checkpoint": "demo-sd15.safetensors"}
PROMPT = "a photo of a cat"


def pixels(body: dict, index: int = 0) -> np.ndarray:
    return np.asarray(decode_png(body["images"][index])).astype(int)


def generate(client, prompt: str, **payload) -> dict:
    return txt2img(client, prompt=prompt, seed=11, steps=3, override_settings=MODEL, **payload)


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def extra_loras(client):
    """A second LoRA whose alias differs from its file name, and a LoHa file, added for this module only."""
    folder = client.app.state.sdapi.settings.loras_dir
    tensors = random_lora_tensors(kohya_layers(build_tiny_sd15_pipeline(0)), seed=1)
    paths = [
        write_kohya_lora(folder / "extra-lora-b.safetensors", tensors,
                         kohya_metadata("demo-sd15.safetensors", "b-alias")),
        write_torch_lora(folder / "extra-loha.safetensors", {
            "lora_unet_mid_block_attentions_0_proj_in.hada_w1_a": torch.randn(4, 4),
            "lora_unet_mid_block_attentions_0_proj_in.hada_w1_b": torch.randn(4, 32)}),
    ]
    assert client.post("/sdapi/v1/refresh-loras").json() is None
    yield paths
    for path in paths:
        path.unlink()
    client.post("/sdapi/v1/refresh-loras")


# -- listing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recording", ["get-loras.json", "webui-mode/get-loras.json"])
def test_loras_items_have_the_recorded_shape(client, recording):
    recorded = load_recording(recording)["response"][0]
    r = client.get("/sdapi/v1/loras")
    assert r.status_code == 200
    (item,) = [i for i in r.json() if i["name"] == "demo-lora"]
    assert list(item) == list(recorded)
    assert all(type(item[k]) is type(recorded[k]) for k in recorded)
    settings = client.app.state.sdapi.settings
    assert item["alias"] == "demo-lora" and Path(item["path"]) == settings.loras_dir / "demo-lora.safetensors"
    # A1111's display order: model name, resolution, clip skip first; JSON-looking values decoded.
    assert list(item["metadata"])[:3] == list(recorded["metadata"])[:3]
    assert item["metadata"]["ss_network_args"] == {"conv_dim": "4", "conv_alpha": "2.0"}
    assert item["metadata"]["ss_output_name"] == "demo-lora"


def test_refresh_loras_picks_up_new_and_removed_files(client):
    folder = client.app.state.sdapi.settings.loras_dir
    path = folder / "late-arrival.safetensors"
    os.link(folder / "demo-lora.safetensors", path)
    try:
        assert "late-arrival" not in [i["name"] for i in client.get("/sdapi/v1/loras").json()]
        r = client.post("/sdapi/v1/refresh-loras")
        assert r.status_code == 200 and r.json() is None
        assert "late-arrival" in [i["name"] for i in client.get("/sdapi/v1/loras").json()]
    finally:
        path.unlink()
    client.post("/sdapi/v1/refresh-loras")
    assert "late-arrival" not in [i["name"] for i in client.get("/sdapi/v1/loras").json()]


def test_openapi_entry_is_a1111s(client):
    frozen = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "openapi.json").read_text())
    ours = client.get("/openapi.json").json()["paths"]["/sdapi/v1/loras"]
    assert ours == frozen["paths"]["/sdapi/v1/loras"]


# -- txt2img ------------------------------------------------------------------------------------------------


def test_weight_zero_is_exactly_no_lora(client):
    plain = generate(client, PROMPT)
    zero = generate(client, f"{PROMPT} <lora:demo-lora:0>")
    assert np.array_equal(pixels(zero), pixels(plain))


def test_every_weight_changes_the_image_negative_ones_too(client):
    plain = pixels(generate(client, PROMPT))
    images = {w: pixels(generate(client, f"{PROMPT} <lora:demo-lora:{w}>")) for w in (0.1, 1, -1)}
    assert all(change(image, plain) > 1 for image in images.values())
    assert change(images[1], images[-1]) > 1


def test_weight_changes_the_unet_output_monotonically(client):
    """The UNet's noise prediction moves away from the base one steadily as the UNet multiplier grows."""
    state = client.app.state.sdapi
    generate(client, PROMPT)  # loads the model the way a request does
    model = state.engine.model(state.catalog.find("demo-sd15.safetensors").filename)
    lora = str(state.loras.find("demo-lora").filename)
    generator = torch.Generator().manual_seed(3)
    latents = torch.randn((2, 4, 8, 8), generator=generator)
    text = model.encoder.encode([PROMPT, PROMPT])

    def eps(weight: float) -> torch.Tensor:
        with state.engine.loras.applied(model.pipe, [LoraActivation(lora, "demo-lora", 0.0, weight)]):
            with torch.no_grad():
                return model.unet(latents, 500, encoder_hidden_states=text).sample

    base = eps(0.0)
    distances = [float((eps(w) - base).norm()) for w in (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)]
    assert 0 < distances[0] and all(a < b for a, b in zip(distances, distances[1:])), distances
    assert float((eps(-0.5) - base).norm()) == pytest.approx(distances[2], rel=0.2)


def test_text_encoder_and_unet_multipliers_apply_apart_and_add_up(client):
    plain = pixels(generate(client, PROMPT))
    both = pixels(generate(client, f"{PROMPT} <lora:demo-lora:1>"))
    te_only = pixels(generate(client, f"{PROMPT} <lora:demo-lora:1:0>"))
    unet_only = pixels(generate(client, f"{PROMPT} <lora:demo-lora:0:1>"))
    assert change(te_only, plain) > 1 and change(unet_only, plain) > 1
    assert change(te_only, both) > 1 and change(unet_only, both) > 1
    split = pixels(generate(client, f"{PROMPT} <lora:demo-lora:1:0> <lora:demo-lora:0:1>"))
    assert np.abs(split - both).max() <= 1  # the same update, summed in another order


def test_two_loras_compose(client, extra_loras):
    plain = pixels(generate(client, PROMPT))
    a = pixels(generate(client, f"{PROMPT} <lora:demo-lora:1>"))
    b = pixels(generate(client, f"{PROMPT} <lora:b-alias:1>"))
    both = generate(client, f"{PROMPT} <lora:demo-lora:1> <lora:b-alias:1>")
    assert min(change(pixels(both), x) for x in (plain, a, b)) > 1
    halves = pixels(generate(client, f"{PROMPT} <lora:demo-lora:0.5> <lora:demo-lora:0.5>"))
    assert np.abs(halves - a).max() <= 1
    infotext = json.loads(both["info"])["infotexts"][0]
    assert 'Lora hashes: "demo-lora: ' in infotext and ", b-alias: " in infotext


def test_lookup_by_alias_equals_lookup_by_file_name(client, extra_loras):
    by_alias = generate(client, f"{PROMPT} <lora:b-alias:0.8>")
    by_name = generate(client, f"{PROMPT} <lora:extra-lora-b:0.8>")
    assert np.array_equal(pixels(by_alias), pixels(by_name))
    assert "b-alias: " in json.loads(by_alias["info"])["infotexts"][0]


def test_plain_request_after_a_lora_request_equals_a_fresh_server(client, settings):
    generate(client, f"{PROMPT} <lora:demo-lora:1>")
    after = generate(client, PROMPT)
    with TestClient(create_app(settings), raise_server_exceptions=False) as fresh:
        first = generate(fresh, PROMPT)
    assert np.array_equal(pixels(after), pixels(first))


def test_infotext_keeps_the_tag_and_names_the_lora_hash(client):
    tagged = f"{PROMPT} <lora:demo-lora:0.8>"
    body = generate(client, tagged, batch_size=2)
    info = json.loads(body["info"])
    assert info["prompt"] == tagged and info["all_prompts"] == [tagged, tagged]
    metadata = next(i for i in client.get("/sdapi/v1/loras").json() if i["name"] == "demo-lora")["metadata"]
    expected = f"demo-lora: {metadata['sshs_model_hash'][:12]}"
    assert info["extra_generation_params"] == {"Lora hashes": expected}
    for i, text in enumerate(info["infotexts"]):
        assert text.startswith(tagged + "\n")
        assert text.endswith(f', Lora hashes: "{expected}"')
        assert decode_png(body["images"][i]).info["parameters"] == text
    assert change(pixels(body, 1), pixels(generate(client, PROMPT, batch_size=2), 1)) > 1  # every image of the batch


def test_unknown_lora_is_ignored_with_a_log_line(client, caplog):
    plain = generate(client, PROMPT)
    with caplog.at_level(logging.WARNING, logger="sdapi"):
        unknown = generate(client, f"{PROMPT} <lora:no-such-lora:1>")
    assert np.array_equal(pixels(unknown), pixels(plain))
    assert "Couldn't find Lora with name no-such-lora" in caplog.text
    info = json.loads(unknown["info"])
    assert info["extra_generation_params"] == {} and "Lora hashes" not in info["infotexts"][0]


def test_loha_file_is_skipped_not_a_crash(client, extra_loras, caplog):
    plain = generate(client, PROMPT)
    with caplog.at_level(logging.ERROR, logger="sdapi"):
        body = generate(client, f"{PROMPT} <lora:extra-loha:1>")
    assert np.array_equal(pixels(body), pixels(plain))
    assert "a LoHa network (hada_* tensors)" in caplog.text


def test_sd_lora_option_adds_the_lora_to_every_prompt(client):
    body = txt2img(client, prompt=PROMPT, seed=11, steps=3, override_settings={**MODEL, "sd_lora": "demo-lora"})
    explicit = generate(client, f"{PROMPT} <lora:demo-lora:1>")
    assert np.array_equal(pixels(body), pixels(explicit))
    assert json.loads(body["info"])["all_prompts"] == [f"{PROMPT}<lora:demo-lora:1.0>"]


def test_a_lora_file_is_read_from_disk_once(client):
    cache = client.app.state.sdapi.engine.loras.cache
    generate(client, f"{PROMPT} <lora:demo-lora:0.3>")
    loads = cache.loads
    generate(client, f"{PROMPT} <lora:demo-lora:0.9>")
    assert cache.loads == loads
