"""LoRAs merged into the weights or added by hooks, through HTTP: both give the LoRA's image (LoCon and text
encoder layers, split and negative multipliers, several LoRAs), and the model is exactly a fresh server's
afterwards, also when the job fails, is interrupted or runs out of memory while merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import sdapi.engine.local as engine_local
import sdapi.engine.lora_merge as lora_merge
from sdapi.app import create_app
from tests.api.test_jobs import SLOW, Background, wait_for
from tests.api.test_loras import MODEL, PROMPT, change, generate, pixels

MODES = ("auto", "merge", "hooks")


@pytest.fixture(params=MODES)
def lora_mode(request, state):
    before = state.engine.loras.mode
    state.engine.loras.mode = request.param
    yield request.param
    state.engine.loras.mode = before


def model_weights(state) -> dict[str, torch.Tensor]:
    model = state.engine.model(state.catalog.find("demo-sd15.safetensors").filename)
    return {f"{part}.{key}": value.clone() for part in ("unet", "text_encoder")
            for key, value in getattr(model.pipe, part).state_dict().items()}


def same_weights(state, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(value, before[key]) for key, value in model_weights(state).items())


def test_plain_request_after_a_lora_request_is_a_fresh_servers_byte_for_byte(client, settings, lora_mode):
    generate(client, f"{PROMPT} <lora:demo-lora:0.9>")
    after = generate(client, PROMPT)
    with TestClient(create_app(settings), raise_server_exceptions=False) as fresh:
        first = generate(fresh, PROMPT)
    assert after["images"] == first["images"]


def test_merged_and_hooked_images_agree(client, state):
    tagged = f"{PROMPT} <lora:demo-lora:0.8>"
    images = {}
    for mode in ("merge", "hooks"):
        state.engine.loras.mode = mode
        images[mode] = pixels(generate(client, tagged))
    state.engine.loras.mode = "auto"
    assert np.abs(images["merge"] - images["hooks"]).max() <= 2  # rounding only
    assert np.array_equal(pixels(generate(client, tagged)), images["merge"])  # auto merges a sampling job


def test_every_mode_applies_split_negative_and_stacked_multipliers(client, state, lora_mode):
    before = model_weights(state)
    plain = pixels(generate(client, PROMPT))
    both = pixels(generate(client, f"{PROMPT} <lora:demo-lora:1>"))
    te_only = pixels(generate(client, f"{PROMPT} <lora:demo-lora:1:0>"))
    unet_only = pixels(generate(client, f"{PROMPT} <lora:demo-lora:0:1>"))
    negative = pixels(generate(client, f"{PROMPT} <lora:demo-lora:-1>"))
    assert min(change(x, plain) for x in (both, te_only, unet_only, negative)) > 1
    assert change(negative, both) > 1 and change(te_only, unet_only) > 1
    split = pixels(generate(client, f"{PROMPT} <lora:demo-lora:1:0> <lora:demo-lora:0:1>"))
    halves = pixels(generate(client, f"{PROMPT} <lora:demo-lora:0.5> <lora:demo-lora:0.5>"))
    assert np.abs(split - both).max() <= 1 and np.abs(halves - both).max() <= 1
    assert same_weights(state, before)


def test_a_job_failing_mid_sampling_restores_the_weights(client, state, monkeypatch):
    plain = generate(client, PROMPT)
    before = model_weights(state)
    real = engine_local.run_txt2img_group

    def fails_after_sampling(*args, **kwargs):
        real(*args, **kwargs)
        assert not same_weights(state, before)  # merged while the job runs
        raise RuntimeError("boom")

    monkeypatch.setattr(engine_local, "run_txt2img_group", fails_after_sampling)
    r = client.post("/sdapi/v1/txt2img", json={"prompt": f"{PROMPT} <lora:demo-lora:1>", "seed": 11, "steps": 3,
                                               "override_settings": MODEL})
    assert r.status_code == 500
    monkeypatch.undo()
    assert same_weights(state, before)
    assert generate(client, PROMPT)["images"] == plain["images"]


def test_an_interrupted_lora_job_restores_the_weights(client, state):
    plain = generate(client, PROMPT)
    before = model_weights(state)
    job = Background(client, {**SLOW, "prompt": f"{PROMPT} <lora:demo-lora:1>", "override_settings": MODEL})
    wait_for(client, lambda b: b["state"]["sampling_step"] >= 2)
    assert not same_weights(state, before)  # a 256x256 job merges
    client.post("/sdapi/v1/interrupt")
    assert job.join().status_code == 200
    assert same_weights(state, before)
    assert generate(client, PROMPT)["images"] == plain["images"]


def test_out_of_memory_while_merging_fails_the_job_and_changes_nothing(client, state, monkeypatch):
    plain = generate(client, PROMPT)
    before = model_weights(state)
    real, calls = lora_merge.weight_update, []

    def runs_out(layer, multiplier, weight):
        calls.append(1)
        if len(calls) > 20:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return real(layer, multiplier, weight)

    monkeypatch.setattr(lora_merge, "weight_update", runs_out)
    r = client.post("/sdapi/v1/txt2img", json={"prompt": f"{PROMPT} <lora:demo-lora:1>", "seed": 11, "steps": 3,
                                               "override_settings": MODEL})
    assert r.status_code == 500
    assert r.json()["error"] == "DeviceOutOfMemory" and "ran out of memory" in r.json()["errors"]
    monkeypatch.undo()
    assert same_weights(state, before)
    assert generate(client, PROMPT)["images"] == plain["images"]
