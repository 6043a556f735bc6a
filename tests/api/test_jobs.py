"""The job queue seen from clients: live progress, interrupt, skip, many concurrent requests, failed jobs."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from tests.conftest import decode_png

SLOW = {"prompt": "a lighthouse", "width": 256, "height": 256, "steps": 150, "sampler_name": "Euler"}


class Background:
    """A request running on another thread, like a second client."""

    def __init__(self, client, payload: dict):
        self.response = None
        self.thread = threading.Thread(target=self._run, args=(client, payload), daemon=True)
        self.thread.start()

    def _run(self, client, payload):
        self.response = client.post("/sdapi/v1/txt2img", json=payload)

    def join(self, timeout: float = 120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "request did not finish"
        return self.response


def wait_for(client, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get("/sdapi/v1/progress").json()
        if predicate(body):
            return body
        time.sleep(0.02)
    raise AssertionError(f"progress never satisfied the condition; last: {body}")


@pytest.fixture()
def previews_every_step(client, state):
    before = state.options.get("show_progress_every_n_steps")
    client.post("/sdapi/v1/options", json={"show_progress_every_n_steps": 1})
    yield
    client.post("/sdapi/v1/options", json={"show_progress_every_n_steps": before})


def test_progress_mid_job_then_idle(client, previews_every_step):
    job = Background(client, SLOW)
    first = wait_for(client, lambda b: b["state"]["sampling_step"] >= 2)
    later = wait_for(client, lambda b: b["state"]["sampling_step"] > first["state"]["sampling_step"] + 2)
    client.post("/sdapi/v1/interrupt")
    assert job.join().status_code == 200
    for body in (first, later):
        assert body["state"]["job_count"] == 1 and body["state"]["sampling_steps"] == 150
        expected = 0.01 + body["state"]["sampling_step"] / 150
        assert body["progress"] == pytest.approx(expected)
        assert body["eta_relative"] > 0
    assert later["progress"] > first["progress"]
    preview = decode_png(later["current_image"])
    assert preview.size == (32, 32)  # the cheap preview is at latent resolution
    idle = client.get("/sdapi/v1/progress").json()
    assert idle["progress"] == 0.0 and idle["state"]["job_count"] == 0 and idle["current_image"] is None


def test_skip_current_image_omits_the_preview(client, previews_every_step):
    job = Background(client, SLOW)
    wait_for(client, lambda b: b["state"]["sampling_step"] >= 2)
    body = client.get("/sdapi/v1/progress", params={"skip_current_image": "true"}).json()
    client.post("/sdapi/v1/interrupt")
    job.join()
    assert body["current_image"] is None and body["state"]["job_count"] == 1


def test_interrupt_returns_what_was_finished_and_the_next_job_runs(client):
    job = Background(client, {**SLOW, "n_iter": 3, "seed": 11})
    wait_for(client, lambda b: b["state"]["sampling_step"] >= 2)
    assert client.post("/sdapi/v1/interrupt").json() == {}
    r = job.join()
    assert r.status_code == 200
    body = r.json()
    assert len(body["images"]) == 1  # the batch in progress is decoded; later batches never start
    assert json.loads(body["info"])["all_seeds"][:1] == [11]
    after = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "width": 64, "height": 64, "steps": 3,
                                                   "n_iter": 2})
    assert after.status_code == 200 and len(after.json()["images"]) == 2


def test_skip_moves_to_the_next_batch(client):
    job = Background(client, {**SLOW, "n_iter": 2, "steps": 60})
    progressed = wait_for(client, lambda b: b["state"]["sampling_step"] >= 2)
    assert progressed["state"]["job"] == "Batch 1 out of 2"
    assert client.post("/sdapi/v1/skip").json() is None
    second = wait_for(client, lambda b: b["state"]["job_no"] == 1 and b["state"]["sampling_step"] >= 1)
    assert second["state"]["skipped"] is False and second["state"]["job"] == "Batch 2 out of 2"
    r = job.join()
    assert r.status_code == 200 and len(r.json()["images"]) == 2


def test_concurrent_requests_all_complete_in_order_with_their_seeds(client, state, monkeypatch):
    # Arrival order of jobs that run one by one; merged batches finish together (tests/api/test_batching.py).
    monkeypatch.setattr(state.queue, "batching", dataclasses.replace(state.queue.batching, max_images=1))
    finished: list[int] = []
    lock = threading.Lock()
    responses: dict[int, object] = {}

    def run(seed: int):
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "width": 64, "height": 64, "steps": 3,
                                                   "seed": seed})
        with lock:
            finished.append(seed)
            responses[seed] = r

    threads = []
    for seed in range(100, 108):
        t = threading.Thread(target=run, args=(seed,))
        t.start()
        threads.append(t)
        time.sleep(0.05)  # arrival order = seed order
    for t in threads:
        t.join(120)
    assert sorted(responses) == list(range(100, 108))
    for seed, r in responses.items():
        assert r.status_code == 200
        assert json.loads(r.json()["info"])["seed"] == seed
    assert finished == list(range(100, 108))


def test_listing_endpoints_answer_while_a_job_runs(client):
    job = Background(client, SLOW)
    wait_for(client, lambda b: b["state"]["sampling_step"] >= 1)
    started = time.monotonic()
    for path in ("/sdapi/v1/options", "/sdapi/v1/sd-models", "/sdapi/v1/samplers", "/sdapi/v1/progress"):
        assert client.get(path).status_code == 200
    elapsed = time.monotonic() - started
    still_running = client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 1
    client.post("/sdapi/v1/interrupt")
    job.join()
    assert still_running, f"listing waited for the job ({elapsed:.2f} s)"


def test_a_failed_job_leaves_no_stale_progress(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "width": 64, "height": 64, "steps": 2,
                                               "override_settings": {"no_such_option": 1}})
    assert r.status_code == 500 and r.json()["error"] == "KeyError"
    idle = client.get("/sdapi/v1/progress").json()
    assert idle["state"]["job_count"] == 0 and idle["progress"] == 0.0
