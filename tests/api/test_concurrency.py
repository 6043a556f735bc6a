"""What happens when requests overlap: a job's own option copy, preview rendering, the queue's bound, decoding off
the event loop, and failures that must not pass silently (each of these was a defect of the old serving layer)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import threading

import pytest
import torch
from fastapi.testclient import TestClient

import sdapi.serving.img2img as serving_img2img
from sdapi.app import create_app
from sdapi.engine.lora_cache import LoraCache
from sdapi.serving.control import JobControl
from tests.conftest import txt2img


class Gate:
    """Holds the running job at its first sampling step until released."""

    def __init__(self, control: JobControl):
        self.reached, self.release = threading.Event(), threading.Event()
        self._step = control.step

    def step(self, step, preview=None):
        self.reached.set()
        assert self.release.wait(60), "the gate was never released"
        self._step(step, preview)


@pytest.fixture()
def gate(state, monkeypatch):
    held = Gate(state.control)
    monkeypatch.setattr(state.control, "step", held.step)
    yield held
    held.release.set()


def in_background(client, path: str, payload: dict) -> dict:
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(response=client.post(path, json=payload)), daemon=True)
    thread.start()
    box["thread"] = thread
    return box


@pytest.fixture()
def restore_clip_skip(state):
    before = state.options.get("CLIP_stop_at_last_layers")
    yield
    state.options.set("CLIP_stop_at_last_layers", before)
    state.options.save()


def test_options_posted_during_a_job_are_kept_and_the_job_keeps_its_own(client, state, settings, gate,
                                                                          restore_clip_skip):
    overridden = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 2, "seed": 9,
                  "override_settings": {"CLIP_stop_at_last_layers": 3}}
    job = in_background(client, "/sdapi/v1/txt2img", overridden)
    assert gate.reached.wait(60)
    assert client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2}).status_code == 200
    gate.release.set()
    job["thread"].join(120)
    body = job["response"].json()
    # The POST is saved as posted and survives the job.
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 2
    saved = json.loads(settings.config_file.read_text())
    assert saved["CLIP_stop_at_last_layers"] == 2
    # The job's infotext states the settings its pixels were made with.
    assert "Clip skip: 3," in json.loads(body["info"])["infotexts"][0]
    again = txt2img(client, **{k: v for k, v in overridden.items() if k != "prompt"})
    assert again["images"] == body["images"]


def test_a_job_that_fails_keeps_none_of_its_overrides(client, state):
    before = state.options.get("samples_format")
    # AND with DDIM fails inside the job (A1111's 500), after the job has started with its options.
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a cat AND a dog", "steps": 2, "width": 64, "height": 64,
                                               "sampler_name": "DDIM", "override_settings_restore_afterwards": False,
                                               "override_settings": {"samples_format": "jpg"}})
    assert r.status_code == 500 and r.json()["error"] == "AssertionError"
    assert state.options.get("samples_format") == before


def test_previews_render_once_per_due_step_whoever_asks():
    control = JobControl()
    control.begin(1, "0")
    control.step(5, "latents")
    inside, release, renders = threading.Event(), threading.Event(), []

    def slow_render(source):
        renders.append(source)
        inside.set()
        release.wait(10)
        return "png"

    first = threading.Thread(target=lambda: control.current_preview(1, slow_render))
    first.start()
    inside.wait(10)
    second = threading.Thread(target=lambda: control.current_preview(1, slow_render))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert renders == ["latents"] and control.current_preview(1, slow_render) == "png"


def test_a_full_queue_answers_503_with_retry_after(settings, monkeypatch):
    with TestClient(create_app(dataclasses.replace(settings, queue_size=1)), raise_server_exceptions=False) as client:
        state = client.app.state.sdapi
        held = Gate(state.control)
        monkeypatch.setattr(state.control, "step", held.step)
        payload = {"prompt": "x", "width": 64, "height": 64, "steps": 2}
        running = in_background(client, "/sdapi/v1/txt2img", payload)
        assert held.reached.wait(60)
        waiting = in_background(client, "/sdapi/v1/txt2img", payload)
        while state.queue.pending < 1:
            waiting["thread"].join(0.01)
        refused = client.post("/sdapi/v1/txt2img", json=payload)
        held.release.set()
        running["thread"].join(120)
        waiting["thread"].join(120)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "QueueFull" and "queue is full" in refused.json()["errors"]
    assert running["response"].status_code == waiting["response"].status_code == 200


def test_images_are_decoded_off_the_event_loop(client, monkeypatch):
    seen = []
    decode = serving_img2img.decode_image

    def recording(data):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return decode(data)

    monkeypatch.setattr(serving_img2img, "decode_image", recording)
    image = txt2img(client)["images"][0]
    r = client.post("/sdapi/v1/img2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2,
                                               "init_images": [image], "denoising_strength": 0.5})
    assert r.status_code == 200 and seen == ["worker thread"]


def test_out_of_memory_in_a_lora_fails_the_job_instead_of_dropping_the_lora(client, monkeypatch):
    def no_memory(self, path):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(LoraCache, "get", no_memory)
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a cat <lora:demo-lora:1>", "width": 64, "height": 64,
                                               "steps": 2})
    assert r.status_code == 500
    assert r.json()["error"] == "DeviceOutOfMemory" and "ran out of memory" in r.json()["errors"]
    monkeypatch.undo()
    assert len(txt2img(client)["images"]) == 1  # the server goes on


def live_tensors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def test_unload_frees_every_tensor_the_engine_holds(client, state):
    txt2img(client, prompt="a cat <lora:demo-lora:1>")
    engine = state.engine
    assert engine.loaded() and engine.loras.cache.cached()
    assert client.post("/sdapi/v1/unload-checkpoint").status_code == 200
    unloaded = live_tensors()
    assert not engine.loaded() and not engine.loras.cache.cached()
    # Loading it all again and unloading lands on the same count: nothing stays behind.
    txt2img(client, prompt="a cat <lora:demo-lora:1>")
    assert live_tensors() > unloaded
    client.post("/sdapi/v1/unload-checkpoint")
    assert live_tensors() <= unloaded


def test_stopping_the_server_fails_queued_jobs_with_a_503_and_stops_the_running_one(settings, monkeypatch):
    with TestClient(create_app(dataclasses.replace(settings)), raise_server_exceptions=False) as client:
        state = client.app.state.sdapi
        held = Gate(state.control)
        monkeypatch.setattr(state.control, "step", held.step)
        payload = {"prompt": "x", "width": 64, "height": 64, "steps": 50}
        running = in_background(client, "/sdapi/v1/txt2img", payload)
        assert held.reached.wait(60)
        queued = in_background(client, "/sdapi/v1/txt2img", payload)
        while state.queue.pending < 1:
            queued["thread"].join(0.01)
        state.stop_jobs(wait=None)  # what SIGTERM does first
        held.release.set()
        running["thread"].join(120)
        queued["thread"].join(120)
        late = client.post("/sdapi/v1/txt2img", json=payload)
    assert queued["response"].status_code == 503 and queued["response"].json()["error"] == "ShuttingDown"
    assert late.status_code == 503
    assert running["response"].status_code == 200 and len(running["response"].json()["images"]) <= 1
