"""SDXL LoRAs through HTTP on the tiny SDXL checkpoint: kohya's SDXL file (UNet in the SGM layout, both text
encoders, LoCon convs) changes the image per part, merged and hooked alike, with ``Lora hashes`` in the infotext;
the model is exactly as before afterwards; a LoRA made for the other family is skipped with a warning, both ways.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.engine.demo_lora_sdxl import write_demo_sdxl_lora
from sdapi.engine.demo_sdxl import write_demo_sdxl
from sdapi.settings import Settings
from tests.conftest import decode_png, txt2img

SDXL, SD15 = "demo-sdxl.safetensors", "demo-sd15.safetensors"
PROMPT = "a photo of a cat"


@pytest.fixture(scope="module")
def sdxl_lora_dir(data_dir, tmp_path_factory):
    """The SD 1.5 demo checkpoint and LoRA, the tiny SDXL checkpoint and its kohya SDXL LoRA."""
    root = tmp_path_factory.mktemp("sdxl-lora-data")
    shutil.copytree(data_dir / "models", root / "models")
    for extra in (root / "models" / "Stable-diffusion").glob("*"):
        if extra.name != SD15:
            extra.unlink()
    write_demo_sdxl(root)
    write_demo_sdxl_lora(root)
    return root


@pytest.fixture(scope="module")
def sdxl_client(sdxl_lora_dir, tmp_path_factory):
    settings = Settings(data_dir=sdxl_lora_dir, cache_dir=tmp_path_factory.mktemp("sdxl-lora-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def generate(client, prompt: str, checkpoint: str = SDXL) -> dict:
    return txt2img(client, prompt=prompt, seed=3, steps=3, override_settings={"sd_model_checkpoint": checkpoint})


def pixels(body: dict) -> np.ndarray:
    return np.asarray(decode_png(body["images"][0])).astype(int)


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_loras_lists_the_sdxl_file_with_its_base_model_version(sdxl_client):
    listed = {item["name"]: item for item in sdxl_client.get("/sdapi/v1/loras").json()}
    assert listed["demo-sdxl-lora"]["metadata"]["ss_base_model_version"] == "sdxl_base_v1-0"
    assert listed["demo-sdxl-lora"]["alias"] == "demo-sdxl-lora"
    assert listed["demo-lora"]["metadata"]["ss_base_model_version"] == "sd_v1"


def test_an_sdxl_lora_changes_the_image_through_each_part_and_leaves_no_trace(sdxl_client):
    plain = pixels(generate(sdxl_client, PROMPT))
    body = generate(sdxl_client, f"{PROMPT} <lora:demo-sdxl-lora:1>")
    both = pixels(body)
    te_only = pixels(generate(sdxl_client, f"{PROMPT} <lora:demo-sdxl-lora:1:0>"))
    unet_only = pixels(generate(sdxl_client, f"{PROMPT} <lora:demo-sdxl-lora:0:1>"))
    zero = pixels(generate(sdxl_client, f"{PROMPT} <lora:demo-sdxl-lora:0>"))
    for changed in (both, te_only, unet_only):
        assert change(changed, plain) > 1.0
    assert change(both, te_only) > 1.0 and change(both, unet_only) > 1.0
    assert np.array_equal(zero, plain)
    assert np.array_equal(pixels(generate(sdxl_client, PROMPT)), plain)  # weights restored exactly
    info = json.loads(body["info"])
    sshs = sdxl_client.get("/sdapi/v1/loras").json()
    digest = next(i for i in sshs if i["name"] == "demo-sdxl-lora")["metadata"]["sshs_model_hash"]
    assert f'Lora hashes: "demo-sdxl-lora: {digest[:12]}"' in info["infotexts"][0]
    assert "warnings" not in info


def test_merged_and_hooked_sdxl_loras_agree(sdxl_client):
    engine = sdxl_client.app.state.sdapi.engine
    tagged = f"{PROMPT} <lora:demo-sdxl-lora:0.8>"
    images = {}
    try:
        for mode in ("merge", "hooks"):
            engine.loras.mode = mode
            images[mode] = pixels(generate(sdxl_client, tagged))
    finally:
        engine.loras.mode = "auto"
    assert np.abs(images["merge"] - images["hooks"]).max() <= 2  # rounding only
    assert change(images["merge"], pixels(generate(sdxl_client, PROMPT))) > 1.0


@pytest.mark.parametrize("checkpoint, lora, made_for, current", [
    (SDXL, "demo-lora", "SD 1.x/2.x", "SDXL"),
    (SD15, "demo-sdxl-lora", "SDXL", "SD 1.x/2.x"),
])
def test_a_lora_for_the_other_family_is_skipped_with_a_warning(sdxl_client, caplog, checkpoint, lora, made_for,
                                                               current):
    plain = pixels(generate(sdxl_client, PROMPT, checkpoint))
    with caplog.at_level("WARNING", logger="sdapi"):
        body = generate(sdxl_client, f"{PROMPT} <lora:{lora}:1>", checkpoint)
    expected = f"Lora {lora}: it was made for {made_for} and the current model is {current}; it was not applied"
    assert json.loads(body["info"])["warnings"] == [expected]
    assert expected in caplog.text
    assert np.array_equal(pixels(body), plain)


def test_a_matching_lora_next_to_a_mismatched_one_still_applies(sdxl_client):
    alone = pixels(generate(sdxl_client, f"{PROMPT} <lora:demo-sdxl-lora:1>"))
    body = generate(sdxl_client, f"{PROMPT} <lora:demo-lora:1> <lora:demo-sdxl-lora:1>")
    assert np.array_equal(pixels(body), alone)
    assert len(json.loads(body["info"])["warnings"]) == 1
