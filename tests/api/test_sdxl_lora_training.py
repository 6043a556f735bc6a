"""SDXL LoRA training over HTTP on the tiny SDXL checkpoint, with kohya's ``sdxl_train_network.py`` vocabulary:
the file is kohya's SDXL format (SGM-layout UNet names, ``lora_te1_``/``lora_te2_``, ``ss_base_model_version``
``sdxl_base_v1-0``, ``sshs_*`` hashes), applies over HTTP and loads in diffusers' ``load_lora_weights`` on the
pipeline sdapi's loader builds; both text encoders learn at their own rates; ``cache_text_encoder_outputs`` trains
the same UNet LoRA as encoding every step; SDXL-only rules are refused with their field.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.engine.demo_lora_sdxl import sdxl_kohya_layers
from sdapi.engine.demo_sdxl import build_tiny_sdxl_pipeline, write_demo_sdxl
from sdapi.engine.lora_format import KOHYA_SUFFIXES, split_key
from sdapi.engine.lora_targets import target_table
from sdapi.settings import Settings
from tests.api.test_lora_training import read_file, submit, wait_for, write_images
from tests.conftest import decode_png

SDXL, SD15 = "demo-sdxl.safetensors", "demo-sd15.safetensors"
JOB = dict(
    pretrained_model_name_or_path=SDXL, model_train_type="sdxl-lora", train_data_dir="datasets/solid",
    resolution="64,64", min_bucket_reso=64, max_bucket_reso=128, output_name="xl-solid", max_train_epochs=2,
    save_every_n_epochs=0, network_dim=4, network_alpha=2, conv_dim=2, conv_alpha=1, unet_lr=1e-2,
    text_encoder_lr=[1e-3, 2e-3], lr_scheduler="constant", shuffle_caption=False, seed=7, no_half_vae=True,
    sample_prompts="solid red --w 64 --h 64 --s 2 --d 3", sample_every_n_epochs=2, clip_skip=2,
)
UNET_ONLY = dict(JOB, network_train_unet_only=True, conv_dim=None, conv_alpha=None, sample_prompts=None,
                 max_train_epochs=1)


@pytest.fixture(scope="module")
def xl_client(data_dir, tmp_path_factory, settings):
    root = tmp_path_factory.mktemp("sdxl-train")
    shutil.copytree(data_dir / "models", root / "models")
    write_demo_sdxl(root)
    write_images(root / "datasets" / "solid" / "6_solid", [(220, 20, 20)], "solid red")
    with TestClient(create_app(Settings(data_dir=root, cache_dir=settings.cache_dir, num_threads=2)),
                    raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def trained(xl_client):
    view = wait_for(xl_client, submit(xl_client, **JOB))
    assert view["status"] == "done", view["error"]
    return view


def trained_file(view: dict) -> Path:
    return Path(view["outputs"][-1]["path"])


def test_the_job_trains_both_text_encoders_at_their_own_rates(xl_client, trained):
    losses = xl_client.get(f"/lora/train/{trained['job_id']}/loss").json()
    assert len(losses) == trained["progress"]["total_steps"] == 12
    assert losses[0]["lr_unet"] == pytest.approx(1e-2) and losses[0]["lr_te"] == pytest.approx(1e-3)
    tensors, _, _ = read_file(str(trained_file(trained)))
    for prefix in ("lora_te1_", "lora_te2_", "lora_unet_"):  # every part learned: ups left zero
        assert any(key.startswith(prefix) and key.endswith("lora_up.weight") and tensors[key].abs().max() > 0
                   for key in tensors), prefix
    assert trained["samples"] and trained["samples"][0]["epoch"] == 2
    assert "clip_skip is not used in SDXL training" in xl_client.get(f"/lora/train/{trained['job_id']}/log").text


def test_the_file_holds_kohyas_sdxl_names_and_shapes(trained):
    tensors, _, _ = read_file(str(trained_file(trained)))
    layers = {split_key(key)[0] for key in tensors}
    assert {split_key(key)[1] for key in tensors} == KOHYA_SUFFIXES
    assert layers == set(sdxl_kohya_layers(build_tiny_sdxl_pipeline(0)))  # kohya's full SDXL LoCon set
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k" in layers
    assert "lora_unet_output_blocks_2_2_conv" in layers and "lora_unet_input_blocks_3_0_op" in layers
    assert not any("down_blocks" in name or "up_blocks" in name for name in layers)
    assert tensors["lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight"].shape[2:] == (3, 3)
    targets = target_table(build_tiny_sdxl_pipeline(0))
    assert layers <= set(targets)


def test_metadata_names_the_sdxl_base_and_hashes_as_kohya(trained):
    _, metadata, raw = read_file(str(trained_file(trained)))
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0" and metadata["ss_v2"] == "False"
    data_start = 8 + struct.unpack("<Q", raw[:8])[0]
    assert metadata["sshs_model_hash"] == hashlib.sha256(raw[data_start:]).hexdigest()
    assert metadata["sshs_legacy_hash"] == hashlib.sha256(b"").hexdigest()[:8]  # files under 1 MiB
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert metadata["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"
    assert json.loads(metadata["ss_text_encoder_lr"]) == [1e-3, 2e-3]
    assert metadata["ss_sd_model_name"] == SDXL and metadata["ss_output_name"] == "xl-solid"


def test_the_trained_file_applies_over_http(xl_client, trained):
    listed = {item["name"]: item for item in xl_client.get("/sdapi/v1/loras").json()}
    assert listed["xl-solid"]["metadata"]["ss_base_model_version"] == "sdxl_base_v1-0"

    def generate(prompt: str) -> dict:
        r = xl_client.post("/sdapi/v1/txt2img", json={"prompt": prompt, "width": 64, "height": 64, "steps": 3,
                                                       "seed": 5, "override_settings": {"sd_model_checkpoint": SDXL}})
        assert r.status_code == 200, r.text
        return r.json()

    plain = np.asarray(decode_png(generate("solid red")["images"][0])).astype(int)
    body = generate("solid red <lora:xl-solid:1>")
    assert "warnings" not in json.loads(body["info"])
    assert np.abs(np.asarray(decode_png(body["images"][0])).astype(int) - plain).mean() > 1.0


def test_diffusers_loads_the_trained_file_into_the_loaders_sdxl_pipeline(xl_client, trained, settings):
    from peft.tuners.lora import LoraLayer

    from sdapi.engine.checkpoint_loader import load_pipeline

    checkpoint = xl_client.app.state.sdapi.settings.data_dir / "models" / "Stable-diffusion" / SDXL
    pipe = load_pipeline(checkpoint, device=torch.device("cpu"), dtype=torch.float32, cache_dir=settings.cache_dir)
    pipe.set_progress_bar_config(disable=True)

    def image():
        return pipe(prompt="solid red", num_inference_steps=2, height=64, width=64, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    before = image()
    saved = trained_file(trained)
    pipe.load_lora_weights(str(saved.parent), weight_name=saved.name, adapter_name="xl")
    layers = {split_key(key)[0] for key in read_file(str(saved))[0]}
    counts = [sum(isinstance(m, LoraLayer) for m in part.modules())
              for part in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2)]
    assert counts == [sum(name.startswith(prefix) for name in layers)
                      for prefix in ("lora_unet_", "lora_te1_", "lora_te2_")]
    assert np.abs(image() - before).mean() > 1e-3


def test_cached_text_encoder_outputs_train_the_same_unet_lora(xl_client):
    plain = wait_for(xl_client, submit(xl_client, **{**UNET_ONLY, "output_name": "xl-plain"}))
    cached = wait_for(xl_client, submit(xl_client, **{**UNET_ONLY, "output_name": "xl-cached",
                                                      "cache_text_encoder_outputs": True}))
    assert plain["status"] == cached["status"] == "done", (plain["error"], cached["error"])
    a, b = read_file(plain["outputs"][-1]["path"])[0], read_file(cached["outputs"][-1]["path"])[0]
    assert all(key.startswith("lora_unet_") for key in a) and a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)  # the same seed, the same numbers
    assert "cache_text_encoder_outputs: 1 captions encoded once" in \
        xl_client.get(f"/lora/train/{cached['job_id']}/log").text


@pytest.mark.parametrize("change, field", [
    ({"cache_text_encoder_outputs": True, "shuffle_caption": False}, "cache_text_encoder_outputs"),
    ({"cache_text_encoder_outputs": True, "network_train_unet_only": True, "shuffle_caption": True},
     "cache_text_encoder_outputs"),
    ({"cache_text_encoder_outputs_to_disk": True, "network_train_unet_only": True, "caption_dropout_rate": 0.1},
     "cache_text_encoder_outputs"),
    ({"text_encoder_lr": [1e-4, 1e-4, 1e-4]}, "text_encoder_lr"),
    ({"v2": True}, "v2"),
    ({"bucket_reso_steps": 16}, "bucket_reso_steps"),
    ({"pretrained_model_name_or_path": SD15}, "model_train_type"),
    ({"pretrained_model_name_or_path": SD15, "model_train_type": "sd-lora", "cache_text_encoder_outputs": True,
      "network_train_unet_only": True}, "cache_text_encoder_outputs"),
    ({"pretrained_model_name_or_path": SD15, "model_train_type": "sd-lora"}, "text_encoder_lr"),
])
def test_sdxl_rules_are_refused_with_their_field(xl_client, change, field):
    r = xl_client.post("/lora/train", json={**JOB, "output_name": "refused", **change, "dry_run": True})
    assert r.status_code == 422, r.text
    assert field in [str(part) for item in r.json()["detail"] for part in item["loc"]]


def test_an_sdxl_checkpoint_trains_with_the_default_train_type_too(xl_client):
    body = {**JOB, "output_name": "xl-default", "dry_run": True}
    del body["model_train_type"]
    r = xl_client.post("/lora/train", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["dataset"]["total_steps"] == 12
