"""A1111's task ids over ``POST /internal/progress`` and ``GET /internal/pending-tasks``, with later A1111's
``force_task_id``: a client follows its own request while it waits, runs and after it finished."""

from __future__ import annotations

import threading

from tests.conftest import txt2img


def progress(client, task_id, **extra) -> dict:
    r = client.post("/internal/progress", json={"id_task": task_id, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_unknown_task_is_waiting(client):
    assert progress(client, "task(nobody)") == {"active": False, "queued": False, "completed": False,
                                                "progress": None, "eta": None, "live_preview": None,
                                                "id_live_preview": -1, "textinfo": "Waiting..."}


def test_a_finished_task_is_completed(client):
    txt2img(client, force_task_id="task(done-1)")
    body = progress(client, "task(done-1)")
    assert body["completed"] is True and body["active"] is False and body["queued"] is False


def test_a_queued_then_running_task(client, state):
    started, release = threading.Event(), threading.Event()
    state.queue.submit(lambda: (started.set(), release.wait(120)), "test blocker")
    assert started.wait(60)
    seen: dict = {}
    worker = threading.Thread(target=lambda: seen.update(txt2img(client, force_task_id="task(mine)", steps=3)))
    worker.start()
    try:
        for _ in range(600):
            if client.get("/internal/pending-tasks").json()["tasks"] == ["task(mine)"]:
                break
            threading.Event().wait(0.05)
        body = progress(client, "task(mine)")
        assert body["queued"] is True and body["active"] is False and body["textinfo"] == "In queue: 1/1"
        assert client.get("/internal/pending-tasks").json() == {"size": 1, "tasks": ["task(mine)"]}
    finally:
        release.set()
        worker.join(120)
    assert seen["images"]
    body = progress(client, "task(mine)")
    assert body["completed"] is True and client.get("/internal/pending-tasks").json()["size"] == 0


def test_force_task_id_does_not_keep_requests_apart_or_change_images(client):
    plain = txt2img(client, seed=13)
    tagged = txt2img(client, seed=13, force_task_id="task(x)", comments={"a": 1})
    assert plain["images"] == tagged["images"]


def test_a_running_task_is_active_with_its_progress(client, state, monkeypatch):
    started, release = threading.Event(), threading.Event()
    generate = state.engine.generate

    def held(job, events=None):
        started.set()
        release.wait(120)
        return generate(job, events)

    monkeypatch.setattr(state.engine, "generate", held)
    seen: dict = {}
    worker = threading.Thread(target=lambda: seen.update(txt2img(client, force_task_id="task(run)", steps=3)))
    worker.start()
    try:
        assert started.wait(120)
        body = progress(client, "task(run)")
        assert body["active"] is True and body["queued"] is False and body["completed"] is False
        assert body["progress"] == 0.0 and body["id_live_preview"] == -1
    finally:
        release.set()
        worker.join(120)
    assert seen["images"] and progress(client, "task(run)")["completed"] is True
