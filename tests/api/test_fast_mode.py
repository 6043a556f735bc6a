"""Fast mode through HTTP: turned on per request (``override_settings``), by ``POST /options`` and by ``--fast``;
its images carry the infotext marker and stay within a measured bound of the default image; the default mode's
bytes never change; a LoRA switch does not recompile; queued fast requests still share a batch.

Compiling the demo UNet and VAE decoder takes a minute or more of CPU on the first fast request (Inductor's disk
cache makes later sessions faster), so the module is marked ``compile``.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.api.test_batching import BatchSpy, queued_together

pytestmark = pytest.mark.compile

PAYLOAD = {"prompt": "a red house by the sea", "negative_prompt": "fog", "width": 64, "height": 64, "steps": 2,
           "seed": 11, "sampler_name": "Euler a", "cfg_scale": 7}
FAST = {"override_settings": {"sdapi_fast_mode": True}}
# Largest per-channel difference from the default image, in 0-255 levels. Measured on the demo checkpoint at
# 64x64 with 2 steps under bf16 autocast: 4-5 for Euler a and DPM++ 2M Karras, 11 for DDIM, 7 with the demo LoRA on
# the UNet (README "Fast mode"); about twice that as the bound. (A job this small now stays in fp32: closer still.)
MAX_LEVELS = 24


def post(client, **payload):
    r = client.post("/sdapi/v1/txt2img", json={**PAYLOAD, **payload})
    assert r.status_code == 200, r.text
    return r.json()


def pixels(body: dict, index: int = 0) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][index])))
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def infotext(body: dict, index: int = 0) -> str:
    return json.loads(body["info"])["infotexts"][index]


def levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a - b).max())


@pytest.fixture(scope="module")
def default_body(client):
    return post(client)


@pytest.fixture(scope="module")
def fast_body(client, default_body):
    return post(client, **FAST)


def fast_precision(state) -> str:
    """The precision the engine gives a fast PAYLOAD-sized job of the current checkpoint."""
    return state.engine.fast_precision(state.selected_checkpoint().filename, PAYLOAD["width"], PAYLOAD["height"])


def test_fast_override_marks_the_infotext_and_stays_near_the_default_image(state, default_body, fast_body):
    # The demo UNet (16 channels) at an 8x8 latent and its VAE (8 channels) at 64x64 are far below the work where
    # bf16 gains on a CPU.
    assert fast_precision(state) == ("fp32" if state.engine.device_name() == "cpu" else "fp16")
    assert infotext(fast_body).endswith(f"Fast mode: {fast_precision(state)}")
    assert "Fast mode" not in infotext(default_body)
    assert levels(pixels(fast_body), pixels(default_body)) <= MAX_LEVELS


def test_turning_fast_mode_off_again_gives_exactly_the_default_image(client, default_body, fast_body):
    after = post(client, override_settings={"sdapi_fast_mode": False})
    assert after["images"] == default_body["images"]
    assert post(client)["images"] == default_body["images"]


def test_the_same_fast_request_repeats_exactly(client, fast_body):
    assert post(client, **FAST)["images"] == fast_body["images"]


def test_posted_option_turns_fast_mode_on_for_every_request(client, default_body, fast_body):
    assert client.post("/sdapi/v1/options", json={"sdapi_fast_mode": True}).status_code == 200
    try:
        assert client.get("/sdapi/v1/options").json()["sdapi_fast_mode"] is True
        assert post(client)["images"] == fast_body["images"]
        assert post(client, override_settings={"sdapi_fast_mode": False})["images"] == default_body["images"]
    finally:
        client.post("/sdapi/v1/options", json={"sdapi_fast_mode": False})
    assert post(client)["images"] == default_body["images"]


def test_fast_flag_is_the_options_start_value(state, settings, fast_body):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from sdapi.app import build_state, create_app

    # The session's engine (its compiled model) behind a second app started with --fast.
    fast_state = build_state(replace(settings, fast=True), engine=state.engine)
    with TestClient(create_app(state=fast_state), raise_server_exceptions=False) as fast_client:
        assert fast_client.get("/sdapi/v1/options").json()["sdapi_fast_mode"] is True
        body = post(fast_client)
    assert body["images"] == fast_body["images"]
    assert "Fast mode: " in infotext(body)


@pytest.mark.parametrize("value", ["sometimes", [1], {"on": True}])
def test_the_option_is_validated_like_others(client, value):
    r = client.post("/sdapi/v1/txt2img", json={**PAYLOAD, "override_settings": {"sdapi_fast_mode": value}})
    assert r.status_code == 422, r.text
    assert client.post("/sdapi/v1/options", json={"sdapi_fast_mode": value}).status_code == 422
    assert client.get("/sdapi/v1/options").json()["sdapi_fast_mode"] is False


def test_switching_loras_does_not_recompile(client, default_body, fast_body):
    import torch._dynamo.utils

    with_lora = post(client, prompt=PAYLOAD["prompt"] + " <lora:demo-lora:1>", **FAST)
    graphs = dict(torch._dynamo.utils.counters["stats"])
    weaker = post(client, prompt=PAYLOAD["prompt"] + " <lora:demo-lora:0.4>", **FAST)
    unet_only = post(client, prompt=PAYLOAD["prompt"] + " <lora:demo-lora:0:1>", **FAST)
    assert dict(torch._dynamo.utils.counters["stats"]) == graphs
    default_lora = post(client, prompt=PAYLOAD["prompt"] + " <lora:demo-lora:0:1>")
    # The UNet part of the LoRA acts in the compiled graphs: the image moves with it, as the default one does.
    assert levels(pixels(unet_only), pixels(fast_body)) > MAX_LEVELS
    assert levels(pixels(unet_only), pixels(default_lora)) <= MAX_LEVELS
    assert pixels(weaker).tolist() != pixels(with_lora).tolist()


def test_queued_fast_requests_still_share_a_batch(client, state, monkeypatch):
    spy = BatchSpy(state.engine)
    monkeypatch.setattr(state.engine, "generate_batch", spy)
    payloads = [{**PAYLOAD, **FAST, "seed": 21}, {**PAYLOAD, **FAST, "prompt": "a blue boat", "seed": 22}]
    # Alone first: the merged batch has the rows of a two-image job, so it reuses that compilation.
    alone = [post(client, **FAST, batch_size=2, seed=21)] + [post(client, **p) for p in payloads]
    merged = queued_together(client, state, "/sdapi/v1/txt2img", payloads)
    assert spy.sizes[-1] == 2
    for response, single in zip(merged, alone[1:]):
        assert response.status_code == 200, response.text
        assert infotext(response.json()).endswith("Fast mode: " + fast_precision(state))
        # Batch invariance is a default-mode promise; fast mode keeps each image near its own.
        assert levels(pixels(response.json()), pixels(single)) <= MAX_LEVELS
