"""Helpers of the Ray tests (the front itself is ``tests/ray/conftest.py``'s ``ray_front``)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

ray = pytest.importorskip("ray", reason="Ray Serve is an optional extra: pip install -e '.[ray]' to run tests/ray")

BOARD = "sdapi-test-board"
REPLICAS = 2


def wait_for_replicas(url: str, count: int, timeout: float = 60.0) -> list[dict]:
    """The ``/cluster`` replicas once ``count`` of them have posted their status."""
    deadline = time.monotonic() + timeout
    while True:
        replicas = requests.get(f"{url}/sdapi/v1/cluster", timeout=10).json()["replicas"]
        if len(replicas) >= count or time.monotonic() > deadline:
            return replicas
        time.sleep(0.2)


def board_rows() -> list[dict]:
    """The board's rows (with each replica's actor name, which ``/cluster`` does not show)."""
    return ray.get(ray.get_actor(BOARD, namespace="sdapi").replicas.remote())


def txt2img(url: str, **payload) -> requests.Response:
    body = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "seed": 1, **payload}
    return requests.post(f"{url}/sdapi/v1/txt2img", json=body, timeout=120)


def loads_by_replica(url: str) -> dict[str, int]:
    return {r["id"]: r["checkpoint_loads"] for r in wait_for_replicas(url, REPLICAS)}


def start_long_job(url: str, steps: int = 400) -> tuple[threading.Thread, dict]:
    """A txt2img of many steps on a thread; its response lands in the returned dict."""
    out: dict = {}

    def run():
        started = time.monotonic()
        out["response"] = txt2img(url, steps=steps, seed=11)
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def wait_sampling(url: str, timeout: float = 60.0) -> dict:
    """``/progress`` once a job has sampled a step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{url}/sdapi/v1/progress", params={"skip_current_image": True}, timeout=10).json()
        if body["state"]["sampling_step"] > 0 and body["state"]["job_count"] > 0:
            return body
        time.sleep(0.05)
    raise AssertionError("no job reached its first step")
