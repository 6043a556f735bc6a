"""Cross-request batching through HTTP: requests queued together run as one sampling batch, and every response is
byte for byte the one the request gets alone (images, infotexts, ``info``), for txt2img, hires fix and img2img.

The worker is held on an unrelated job while the requests queue up, so what merges does not depend on timing.
"""

from __future__ import annotations

import base64
import io
import json
import threading

import pytest
from PIL import Image

from tests.api.test_concurrency import Gate, in_background

BASE = {"width": 64, "height": 64, "steps": 4, "subseed": 7}
# Per-image fields differ; everything shared is equal.
VARIANTS = [
    {"prompt": "a red house", "seed": 1, "subseed": 11, "cfg_scale": 7},
    {"prompt": "a blue boat on the sea", "negative_prompt": "fog", "seed": 2, "subseed": 12, "cfg_scale": 4.5,
     "batch_size": 2},
    {"prompt": "(a green tree:1.3)", "seed": 3, "subseed": 13, "cfg_scale": 7},
    {"prompt": "a yellow [cat:dog:0.5]", "seed": 4, "cfg_scale": 9, "subseed": 9, "subseed_strength": 0.3},
]


class BatchSpy:
    """Records the size of each batch the engine samples together."""

    def __init__(self, engine):
        self.sizes: list[int] = []
        self._generate_batch = engine.generate_batch

    def __call__(self, jobs, events=None):
        self.sizes.append(len(jobs))
        return self._generate_batch(jobs, events)


@pytest.fixture()
def spy(state, monkeypatch):
    recorder = BatchSpy(state.engine)
    monkeypatch.setattr(state.engine, "generate_batch", recorder)
    return recorder


def comparable(response) -> dict:
    """A response without what differs between two runs of the same request (the job's start time)."""
    assert response.status_code == 200, response.text
    body = response.json()
    info = json.loads(body["info"])
    info.pop("job_timestamp")
    return {"images": body["images"], "info": info, "parameters": body["parameters"]}


def queued_together(client, state, path: str, payloads: list[dict]) -> list:
    """Post ``payloads`` while the worker is held on an unrelated job, so they are all queued when it is free."""
    gate = Gate(state.control)
    state.control.step, restore = gate.step, state.control.step
    try:
        blocker = in_background(client, "/sdapi/v1/txt2img", {"prompt": "hold", "width": 72, "height": 64,
                                                               "steps": 2})
        assert gate.reached.wait(120)
        state.control.step = restore
        posted = [in_background(client, path, payload) for payload in payloads]
        while state.queue.pending < len(payloads):
            posted[0]["thread"].join(0.01)
    finally:
        state.control.step = restore
        gate.release.set()
    blocker["thread"].join(300)
    for box in posted:
        box["thread"].join(300)
    return [box["response"] for box in posted]


def alone(client, path: str, payloads: list[dict]) -> list:
    return [client.post(path, json=payload) for payload in payloads]


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M Karras", "DDIM", "DPM++ SDE", "UniPC", "Heun"])
def test_queued_txt2img_requests_share_a_batch_and_get_their_own_images(client, state, spy, sampler):
    payloads = [{**BASE, **variant, "sampler_name": sampler} for variant in VARIANTS]
    merged = queued_together(client, state, "/sdapi/v1/txt2img", payloads)
    assert spy.sizes == [len(payloads)]
    assert [comparable(r) for r in merged] == [comparable(r) for r in alone(client, "/sdapi/v1/txt2img", payloads)]


@pytest.mark.parametrize("upscaler", ["Latent", "Lanczos"])
def test_hires_fix_requests_merge_too(client, state, spy, upscaler):
    payloads = [{**BASE, **variant, "sampler_name": "Euler a", "enable_hr": True, "hr_scale": 1.5,
                 "hr_upscaler": upscaler, "denoising_strength": 0.6} for variant in VARIANTS[:3]]
    merged = queued_together(client, state, "/sdapi/v1/txt2img", payloads)
    assert spy.sizes == [3]
    assert [comparable(r) for r in merged] == [comparable(r) for r in alone(client, "/sdapi/v1/txt2img", payloads)]


@pytest.mark.parametrize("mode", ["merge", "hooks"])
def test_requests_with_one_lora_set_share_the_merged_weights(client, state, spy, mode):
    lora = " <lora:demo-lora:0.7:-0.4>"  # the set must be the same; text encoder and UNet weights apart
    payloads = [{**BASE, **variant, "prompt": variant["prompt"] + lora, "sampler_name": "Euler a"}
                for variant in VARIANTS]
    state.engine.loras.mode = mode
    try:
        merged = queued_together(client, state, "/sdapi/v1/txt2img", payloads)
        expected = alone(client, "/sdapi/v1/txt2img", payloads)
    finally:
        state.engine.loras.mode = "auto"
    assert spy.sizes == [len(payloads)]
    assert [comparable(r) for r in merged] == [comparable(r) for r in expected]


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_img2img_requests_with_their_own_images_and_masks_merge(client, state, spy):
    images = [png_b64(Image.new("RGB", (64, 64), colour)) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    masks = [png_b64(Image.new("L", (64, 64), 255).crop((0, 0, 64, 64))), png_b64(Image.new("L", (64, 64), 0)),
             png_b64(Image.new("L", (64, 64), 255))]
    payloads = [{**BASE, **variant, "init_images": [image], "mask": mask, "denoising_strength": 0.7,
                 "sampler_name": "DPM++ 2M", "inpainting_fill": fill}
                for variant, image, mask, fill in zip(VARIANTS, images, masks, (1, 2, 0))]
    merged = queued_together(client, state, "/sdapi/v1/img2img", payloads)
    assert spy.sizes == [3]
    assert [comparable(r) for r in merged] == [comparable(r) for r in alone(client, "/sdapi/v1/img2img", payloads)]


def test_what_cannot_share_a_batch_runs_on_its_own(client, state, spy):
    long_prompt = ", ".join(f"word{i}" for i in range(60))  # two 75-token chunks: a longer conditioning
    payloads = [
        {**BASE, "prompt": "a cat", "seed": 1},
        {**BASE, "prompt": long_prompt, "seed": 2},  # offered, then sampled apart (token length)
        {**BASE, "prompt": "a dog", "seed": 3, "steps": 5},  # another step count: never offered
        {**BASE, "prompt": "a cow", "seed": 4, "n_iter": 2},  # several batches: never offered
        {**BASE, "prompt": "a hen", "seed": 5},
    ]
    merged = queued_together(client, state, "/sdapi/v1/txt2img", payloads)
    assert spy.sizes == [3]  # the cat, the long prompt and the hen were offered together
    assert [comparable(r) for r in merged] == [comparable(r) for r in alone(client, "/sdapi/v1/txt2img", payloads)]


def test_a_failing_member_fails_alone(client, state, spy):
    payloads = [{**BASE, "prompt": "a cat", "seed": 1, "sampler_name": "DDIM"},
                {**BASE, "prompt": "a cat AND a dog", "seed": 3, "sampler_name": "DDIM"},
                {**BASE, "prompt": "a fox", "seed": 4, "sampler_name": "DDIM"}]
    merged = queued_together(client, state, "/sdapi/v1/txt2img", payloads)
    assert spy.sizes == [2]  # AND with DDIM is A1111's AssertionError: that job runs (and fails) on its own
    assert merged[1].status_code == 500 and merged[1].json()["error"] == "AssertionError"
    expected = alone(client, "/sdapi/v1/txt2img", [payloads[0], payloads[2]])
    assert [comparable(merged[0]), comparable(merged[2])] == [comparable(r) for r in expected]


def test_cancelling_one_member_leaves_the_others_running(client, state, spy, monkeypatch):
    payloads = [{**BASE, "prompt": f"a cat {i}", "seed": i, "steps": 6} for i in range(3)]
    merged_started, proceed = threading.Event(), threading.Event()
    step = state.control.step

    def held(n, preview=None):
        if spy.sizes and not merged_started.is_set():
            merged_started.set()
            assert proceed.wait(60)
        step(n, preview)

    monkeypatch.setattr(state.control, "step", held)
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(
        queued_together(client, state, "/sdapi/v1/txt2img", payloads)), daemon=True)
    thread.start()
    assert merged_started.wait(300)
    state.queue.cancel(state.queue.running[1])  # as when its client goes away
    proceed.set()
    thread.join(300)
    assert spy.sizes == [3]
    expected = alone(client, "/sdapi/v1/txt2img", [payloads[0], payloads[2]])
    assert [comparable(results[0]), comparable(results[2])] == [comparable(r) for r in expected]
