"""The Agent Scheduler API: queued tasks checked like the synchronous routes, one job queue shared with them,
positions, pause, results, callbacks, restarts, live progress and auth.

Ordering is made deterministic by holding the worker with a blocker job while things are queued, never by sleeping.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import queue as queue_module
import socket
import threading
import zipfile

import pytest
import requests
from fastapi.testclient import TestClient
from PIL import Image

from tests.agent_scheduler_helpers import (  # noqa: F401 - tasks and worker_held are fixtures
    BASE,
    FINAL,
    PNG_URL,
    TINY,
    CallbackReceiver,
    poll,
    queue_task,
    queued_ids,
    task,
    tasks,
    wait_final,
    worker_held,
)
from tests.conftest import decode_png

@pytest.fixture()
def run_order(state, monkeypatch):
    """The first prompt of every generation the engine runs, in order."""
    order: list[str] = []
    generate = state.engine.generate

    def spy(job, events):
        order.append(job.params.prompts[0])
        return generate(job, events)

    monkeypatch.setattr(state.engine, "generate", spy)
    return order


class Background:
    """A synchronous request from another client, on its own thread."""

    def __init__(self, client, path: str, payload: dict):
        self.response = None
        self.thread = threading.Thread(target=self._run, args=(client, path, payload), daemon=True)
        self.thread.start()

    def _run(self, client, path, payload):
        self.response = client.post(path, json=payload)

    def join(self, timeout: float = 120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "request did not finish"
        return self.response


def png_of(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# -- queueing and results ------------------------------------------------------------------------------------


def test_queued_task_gives_the_synchronous_routes_images_and_infotexts(client, tasks):
    task_id = queue_task(client, seed=5, n_iter=2)
    done = wait_final(client, task_id)
    sync = client.post("/sdapi/v1/txt2img", json={**TINY, "seed": 5, "n_iter": 2}).json()

    assert done["status"] == "done" and done["attempts"] == 1 and done["position"] is None
    assert isinstance(done["created_at"], str) and done["created_at"].endswith("+00:00")  # ISO for one task
    result = json.loads(done["result"])
    assert result["images"] == ["00000.png", "00001.png"]  # file names, never server paths
    results = client.get(f"{BASE}/task/{task_id}/results").json()
    assert results["success"] and len(results["data"]) == 2
    infotexts = json.loads(sync["info"])["infotexts"]
    for item, sync_image, infotext in zip(results["data"], sync["images"], infotexts):
        assert item["image"].startswith(PNG_URL)
        assert item["infotext"] == infotext
        ours = decode_png(item["image"][len(PNG_URL):])
        assert ours.info["parameters"] == infotext
        assert list(ours.getdata()) == list(decode_png(sync_image).getdata())

    history = client.get(f"{BASE}/history").json()
    listed = next(t for t in history["tasks"] if t["id"] == task_id)
    assert isinstance(listed["created_at"], int) and listed["status"] == "done"  # ms timestamps in lists
    assert listed["params"]["prompt"] == "a lighthouse" and listed["params"]["sampler_name"] == "Euler"
    assert "init_images" not in listed["params"]

    archive = client.get(f"{BASE}/task/{task_id}/results", params={"zip": "true"})
    assert archive.headers["content-type"] == "application/zip"
    assert archive.headers["content-disposition"] == f"attachment; filename=results-{task_id}.zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == ["00000.png", "00001.png"]


def test_img2img_task_and_its_checkpoint_apply_to_that_task_only(client, state, tasks):
    before = state.options.get("sd_model_checkpoint")
    other = next(m["title"] for m in client.get("/sdapi/v1/sd-models").json() if m["title"] != before)
    image = png_of(Image.new("RGB", (64, 64), "red"))
    task_id = queue_task(client, "img2img", init_images=[image], denoising_strength=0.5, checkpoint=other)
    done = wait_final(client, task_id)
    assert done["status"] == "done", done["result"]
    assert done["type"] == "img2img" and done["params"]["checkpoint"] == other
    infotext = client.get(f"{BASE}/task/{task_id}/results").json()["data"][0]["infotext"]
    assert f"Model: {other.split('.')[0]}," in infotext
    assert state.options.get("sd_model_checkpoint") == before  # restored afterwards


@pytest.mark.parametrize("kind, body", [
    ("txt2img", {"width": 63}),
    ("txt2img", {"steps": 0}),
    ("txt2img", {"steps": "many"}),
    ("txt2img", {"sampler_name": "no such sampler"}),
    ("txt2img", {"override_settings": {"no_such_option": 1}}),
    ("txt2img", {"script_name": "no such script"}),
    ("txt2img", {"alwayson_scripts": {"ADetailer": {"args": []}}}),
    ("txt2img", {"enable_hr": True, "hr_scale": 1000}),
    ("img2img", {}),
    ("img2img", {"init_images": ["not an image"]}),
    ("img2img", {"init_images": [], "denoising_strength": 0.5}),
])
def test_bad_request_is_answered_now_exactly_as_the_synchronous_route(client, tasks, kind, body):
    before = client.get(f"{BASE}/queue").json()["total_pending_tasks"]
    queued = client.post(f"{BASE}/queue/{kind}", json={**TINY, **body})
    sync = client.post(f"/sdapi/v1/{kind}", json={**TINY, **body})
    assert sync.status_code != 200
    assert (queued.status_code, queued.json()) == (sync.status_code, sync.json())
    assert client.get(f"{BASE}/queue").json()["total_pending_tasks"] == before


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "file:///etc/passwd", "javascript:alert(1)", "http://", "http:///path",
    "http://example.com:99999/", "http://exa mple.com/", "http://example.com/" + "a" * 2100,
])
def test_callback_url_must_be_http_with_a_host(client, tasks, url):
    r = client.post(f"{BASE}/queue/txt2img", json={**TINY, "callback_url": url})
    assert r.status_code == 422 and r.json()["error"] == "InvalidRequest", r.text


def test_bounded_fields(client, tasks):
    assert client.post(f"{BASE}/queue/txt2img", json={**TINY, "checkpoint": "x" * 600}).status_code == 422
    assert client.get(f"{BASE}/queue", params={"limit": 1001}).status_code == 422
    assert client.get(f"{BASE}/history", params={"offset": -1}).status_code == 422
    task_id = queue_task(client)
    assert client.post(f"{BASE}/task/{task_id}/rename", params={"name": "n" * 300}).status_code == 422
    assert client.get(f"{BASE}/task/{'x' * 65}").status_code == 422


# -- one queue -----------------------------------------------------------------------------------------------


def test_synchronous_requests_and_tasks_share_the_worker_in_arrival_order(client, state, tasks, worker_held,
                                                                          run_order):
    first = queue_task(client, prompt="A")
    sync = Background(client, "/sdapi/v1/txt2img", {**TINY, "prompt": "B"})
    poll(lambda: state.queue.pending, lambda n: n == 2)
    last = queue_task(client, prompt="C")
    worker_held.set()
    assert sync.join().status_code == 200
    wait_final(client, first), wait_final(client, last)
    assert run_order == ["A", "B", "C"]


def test_positions_move_run_next_and_delete(client, tasks, worker_held, run_order):
    ids = [queue_task(client, prompt=f"p{i}") for i in range(5)]
    assert queued_ids(client) == ids
    status = client.get(f"{BASE}/queue").json()
    assert status["total_pending_tasks"] == 5 and status["current_task_id"] is None and not status["paused"]
    assert [t["position"] for t in status["pending_tasks"]] == [0, 1, 2, 3, 4]
    assert client.get(f"{BASE}/task/{ids[2]}/position").json() == {"success": True,
                                                                   "data": {"status": "pending", "position": 2}}

    assert client.post(f"{BASE}/task/{ids[4]}/move/top").json() == {"success": True, "message": "Task moved to top"}
    assert client.post(f"{BASE}/task/{ids[0]}/move/{ids[3]}").json()["success"]  # just before p3
    assert client.post(f"{BASE}/task/{ids[1]}/move/bottom").json()["success"]
    assert queued_ids(client) == [ids[4], ids[2], ids[0], ids[3], ids[1]]
    run = client.post(f"{BASE}/task/{ids[3]}/run").json()
    assert run == {"success": True, "message": "Task is scheduled to run next"}
    assert client.delete(f"{BASE}/task/{ids[2]}").json() == {"success": True, "message": "Task deleted"}
    assert queued_ids(client) == [ids[3], ids[4], ids[0], ids[1]]
    assert client.get(f"{BASE}/task/{ids[2]}").json() == {"success": False, "message": "Task not found"}
    assert task(client, ids[1])["position"] == 3

    worker_held.set()
    for task_id in (ids[3], ids[4], ids[0], ids[1]):
        assert wait_final(client, task_id)["status"] == "done"
    assert run_order == ["p3", "p4", "p0", "p1"]


def test_pause_hands_no_task_to_the_worker_until_resumed(client, state, tasks, worker_held, run_order):
    assert client.post(f"{BASE}/queue/pause").json() == {"success": True, "message": "Queue paused."}
    first, second = queue_task(client, prompt="first"), queue_task(client, prompt="second")
    assert state.queue.pending == 0  # paused: the tasks have no job on the server's queue
    worker_held.set()
    state.run_sync(lambda: None, "after the blocker")  # the worker has passed everything queued before
    assert [task(client, t)["status"] for t in (first, second)] == ["pending", "pending"]
    assert client.get(f"{BASE}/queue").json()["paused"] is True

    assert client.post(f"{BASE}/task/{second}/run").json()["success"]  # runs even while paused
    assert wait_final(client, second)["status"] == "done"
    assert task(client, first)["status"] == "pending" and task(client, first)["position"] == 0
    assert client.post(f"{BASE}/queue/resume").json() == {"success": True, "message": "Queue resumed."}
    assert wait_final(client, first)["status"] == "done"
    assert run_order == ["second", "first"]


def test_queue_full_answers_503(client, state, tasks, monkeypatch):
    monkeypatch.setattr(state.tasks, "max_tasks", 1)
    client.post(f"{BASE}/queue/pause")
    queue_task(client)
    r = client.post(f"{BASE}/queue/txt2img", json=TINY)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "task queue is full" in r.json()["errors"]


# -- a running task: progress, interrupt, events -------------------------------------------------------------


class HoldAtFirstStep:
    """The engine's event sink, holding the job after its first step until released (a task caught running)."""

    def __init__(self, events, reached: threading.Event, release: threading.Event):
        self._events, self.reached, self.release = events, reached, release

    def __getattr__(self, name):
        return getattr(self._events, name)

    def step(self, step, preview=None):
        self._events.step(step, preview)
        if not self.reached.is_set():
            self.reached.step = step
            self.reached.set()
            self.release.wait(120)


@pytest.fixture()
def held_at_first_step(state, monkeypatch):
    reached, release = threading.Event(), threading.Event()
    generate = state.engine.generate
    monkeypatch.setattr(state.engine, "generate",
                        lambda job, events: generate(job, HoldAtFirstStep(events, reached, release)))
    yield reached, release
    release.set()


def test_running_task_shows_in_progress_and_delete_interrupts_it(client, tasks, held_at_first_step):
    reached, release = held_at_first_step
    task_id = queue_task(client, steps=5, n_iter=3)
    assert reached.wait(120)
    progress = client.get("/sdapi/v1/progress").json()
    assert progress["state"]["job_count"] == 3 and progress["state"]["sampling_step"] == reached.step
    assert progress["state"]["sampling_steps"] == 5 and progress["progress"] > 0
    status = client.get(f"{BASE}/queue").json()
    assert status["current_task_id"] == task_id and status["pending_tasks"][0]["status"] == "running"
    assert task(client, task_id)["status"] == "running"

    assert client.delete(f"{BASE}/task/{task_id}").json() == {"success": True, "message": "Task interrupted"}
    release.set()
    assert wait_final(client, task_id)["status"] == "interrupted"
    assert client.get(f"{BASE}/task/{task_id}/results").json() == {"success": False,
                                                                  "message": "Task is interrupted"}


def test_a_running_task_is_followed_and_interrupted_by_its_task_id(client, state, tasks, held_at_first_step):
    reached, release = held_at_first_step
    task_id = queue_task(client, steps=5, n_iter=3)
    assert reached.wait(120)
    internal = client.post("/internal/progress", json={"id_task": task_id}).json()
    assert internal["active"] is True and internal["completed"] is False
    progress = client.get("/sdapi/v1/progress", params={"id_task": task_id}).json()
    assert progress["state"]["job_count"] == 3 and progress["state"]["sampling_steps"] == 5
    assert client.post("/sdapi/v1/interrupt", params={"id_task": "task(someone-else)"}).status_code == 200
    assert not state.control.flag_interrupted  # another id: not this job
    assert client.post("/sdapi/v1/interrupt", params={"id_task": task_id}).status_code == 200
    assert state.control.flag_interrupted
    release.set()
    assert wait_final(client, task_id)["status"] == "interrupted"
    assert client.post("/internal/progress", json={"id_task": task_id}).json()["completed"] is True


def test_events_stream_status_progress_preview_and_result(client, state, tasks, held_at_first_step):
    from sdapi.app import create_app
    from tests.live_server import serve_in_thread

    reached, release = held_at_first_step
    every = state.options.get("show_progress_every_n_steps")
    client.post("/sdapi/v1/options", json={"show_progress_every_n_steps": 1})
    events: queue_module.Queue = queue_module.Queue()
    with serve_in_thread(create_app(state=state, load_model=False)) as url:
        task_id = queue_task(client, steps=3)
        assert reached.wait(120)

        def listen():
            with requests.get(f"{url}{BASE}/task/{task_id}/events", stream=True, timeout=120) as response:
                events.put(("headers", response.headers))
                name = None
                for line in response.iter_lines(decode_unicode=True):
                    if line.startswith("event: "):
                        name = line[len("event: "):]
                    elif line.startswith("data: "):
                        events.put((name, json.loads(line[len("data: "):])))
            events.put(("closed", None))

        threading.Thread(target=listen, daemon=True).start()
        kind, headers = events.get(timeout=60)
        assert headers["content-type"].startswith("text/event-stream") and "content-encoding" not in headers
        seen = []
        while not any(name == "progress" for name, _ in seen):  # the task is held at its first step meanwhile
            seen.append(events.get(timeout=120))
        release.set()
        while seen[-1][0] != "closed":
            seen.append(events.get(timeout=120))
    client.post("/sdapi/v1/options", json={"show_progress_every_n_steps": every})

    names = [name for name, _ in seen]
    statuses = [data["status"] for name, data in seen if name == "status"]
    assert statuses[-1] == "done" and "running" in statuses
    progress = next(data for name, data in seen if name == "progress")
    assert progress["state"]["sampling_step"] == reached.step and progress["state"]["sampling_steps"] == 3
    assert "preview" in names
    result = seen[-2]
    assert result[0] == "result" and result[1]["status"] == "done" and len(result[1]["images"]) == 1
    assert result[1]["images"][0].startswith(PNG_URL) and result[1]["infotexts"][0].startswith("a lighthouse")


def test_events_of_an_unknown_task_is_404(client, tasks):
    r = client.get(f"{BASE}/task/00000000-0000-4000-8000-000000000000/events")
    assert r.status_code == 404 and r.json() == {"success": False, "message": "Task not found"}


# -- callbacks -----------------------------------------------------------------------------------------------


@pytest.fixture()
def receiver():
    server = CallbackReceiver()
    yield server
    server.close()


def test_callback_receives_every_tasks_images(client, tasks, receiver):
    ids = [queue_task(client, seed=i, batch_size=2, callback_url=f"{receiver.url}/hook?run=1") for i in range(3)]
    posts = receiver.wait_for(lambda posts: len(posts) == 3)
    assert sorted(p["task_id"] for p in posts) == sorted(ids)
    for post in posts:
        assert post["status"] == "done" and post["path"] == "/hook?run=1"
        assert [(name, ctype) for name, _, ctype, _ in post["files"]] == [("files", "image/png")] * 2
        assert all(filename.endswith(".png") for _, filename, _, _ in post["files"])
        results = client.get(f"{BASE}/task/{post['task_id']}/results").json()["data"]
        assert [base64.b64encode(data).decode() for *_, data in post["files"]] == \
            [r["image"][len(PNG_URL):] for r in results]
    for task_id in ids:
        delivered = poll(lambda: task(client, task_id)["callback"], lambda c: c["status"] == "delivered")
        assert delivered == {"status": "delivered", "attempts": 1, "http_status": 200}


def test_callback_is_retried_after_a_server_error():
    server = CallbackReceiver(fail_first=1)
    try:
        from sdapi.tasks.callbacks import CallbackPolicy, CallbackSender, Delivery

        outcomes = []
        sender = CallbackSender(lambda task_id: Delivery(server.url, {"task_id": task_id, "status": "done"}),
                                lambda task_id, outcome: outcomes.append(outcome),
                                CallbackPolicy(first_delay_s=0.01))
        sender.send("t1")
        server.wait_for(lambda posts: len(posts) == 1)
        poll(lambda: outcomes, lambda o: o and o[-1]["status"] == "delivered")
        assert outcomes == [{"status": "pending", "attempts": 1, "http_status": 500},
                            {"status": "delivered", "attempts": 2, "http_status": 200}]
        sender.stop()
    finally:
        server.close()


def test_failed_task_calls_back_without_files_and_an_unreachable_callback_fails_nothing(client, state, tasks,
                                                                                       receiver, monkeypatch):
    def boom(job, events):
        raise RuntimeError("the device fell over")

    monkeypatch.setattr(state.engine, "generate", boom)
    failed = queue_task(client, callback_url=receiver.url)
    post = receiver.wait_for(lambda posts: len(posts) == 1)[0]
    assert post == {"files": [], "task_id": failed, "status": "failed", "path": "/"}
    assert task(client, failed)["result"] == "RuntimeError: the device fell over"
    monkeypatch.undo()

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    done = wait_final(client, queue_task(client, callback_url=closed))
    assert done["status"] == "done"
    callback = poll(lambda: task(client, done["id"])["callback"], lambda c: c["attempts"] >= 1)
    assert callback["error"] == "unreachable" and callback["status"] in ("pending", "failed")


# -- managing tasks ------------------------------------------------------------------------------------------


def test_update_rename_bookmark_requeue_and_clear(client, tasks, worker_held):
    task_id = queue_task(client, prompt="before")
    assert client.put(f"{BASE}/task/{task_id}", json={"name": "mine", "params": {"prompt": "after", "steps": 3}}
                      ).json() == {"success": True, "message": "Task updated."}
    edited = task(client, task_id)
    assert edited["name"] == "mine" and edited["params"]["prompt"] == "after" and edited["params"]["steps"] == 3
    bad = client.put(f"{BASE}/task/{task_id}", json={"params": {"sampler_name": "nope"}})
    assert bad.status_code == 404 and bad.json()["detail"] == "Sampler not found"
    assert task(client, task_id)["params"]["sampler_name"] == "Euler"  # nothing changed
    assert client.post(f"{BASE}/task/{task_id}/rename", params={"name": "renamed"}).json()["success"]
    assert client.post(f"{BASE}/task/{task_id}/bookmark").json() == {"success": True, "message": "Task bookmarked"}
    assert task(client, task_id)["bookmarked"] is True
    worker_held.set()
    assert wait_final(client, task_id)["status"] == "done"
    assert client.put(f"{BASE}/task/{task_id}", json={"checkpoint": "x"}).json() == {"success": False,
                                                                                    "message": "Task is done"}

    assert client.post(f"{BASE}/task/{task_id}/requeue").json() == {"success": True, "message": "Task requeued"}
    copy = poll(lambda: client.get(f"{BASE}/history").json()["tasks"],
                lambda ts: any(t["name"] == "Copy of renamed" for t in ts))
    copy = next(t for t in copy if t["name"] == "Copy of renamed")
    assert copy["status"] == "done" and copy["params"]["prompt"] == "after" and not copy["bookmarked"]

    assert client.post(f"{BASE}/history/clear").json() == {"success": True, "message": "History cleared."}
    history = client.get(f"{BASE}/history").json()
    assert [t["id"] for t in history["tasks"]] == [task_id] and history["total"] == 1  # bookmarked stays
    assert client.get(f"{BASE}/history", params={"status": "bookmarked"}).json()["total"] == 1
    assert client.post(f"{BASE}/task/{task_id}/unbookmark").json()["success"]
    client.post(f"{BASE}/history/clear")
    assert client.get(f"{BASE}/history").json()["total"] == 0


def test_requeue_failed(client, state, tasks, monkeypatch):
    def boom(job, events):
        raise RuntimeError("no")

    monkeypatch.setattr(state.engine, "generate", boom)
    task_id = queue_task(client)
    assert wait_final(client, task_id)["status"] == "failed"
    assert client.get(f"{BASE}/history", params={"status": "failed"}).json()["total"] == 1
    monkeypatch.undo()
    assert client.post(f"{BASE}/task/requeue-failed").json() == {"success": True,
                                                               "message": "Requeued 1 failed tasks"}
    assert wait_final(client, task_id)["status"] == "done"
    assert client.post(f"{BASE}/task/requeue-failed").json() == {"success": False, "message": "No failed tasks"}


def test_export_then_import(client, tasks, worker_held):
    image = png_of(Image.new("RGB", (64, 64), "blue"))
    queue_task(client, prompt="one", checkpoint="demo-sd15.safetensors")
    queue_task(client, "img2img", prompt="two", init_images=[image], denoising_strength=0.4)
    exported = client.get(f"{BASE}/export").json()
    assert [e["params"]["args"]["prompt"] for e in exported] == ["one", "two"]
    assert exported[1]["params"]["args"]["init_images"] == [image]  # what runs travels with the export
    client.post(f"{BASE}/queue/clear")
    assert client.post(f"{BASE}/import", json={"content": json.dumps(exported)}).json() == {
        "success": True, "message": "Queue imported"}
    queue = client.get(f"{BASE}/queue").json()["pending_tasks"]
    assert [t["params"]["prompt"] for t in queue] == ["one", "two"]
    assert queue[0]["params"]["checkpoint"] == "demo-sd15.safetensors"
    assert {t["id"] for t in queue}.isdisjoint({e["id"] for e in exported})

    bad = [{**exported[0], "params": {"args": {**TINY, "width": 63}}}]
    refused = client.post(f"{BASE}/import", json={"content": json.dumps(bad)}).json()
    assert refused["success"] is False and "multiple of 8" in refused["message"]
    assert client.post(f"{BASE}/import", json={"content": "not json"}).json()["success"] is False
    assert len(client.get(f"{BASE}/queue").json()["pending_tasks"]) == 2


# -- durability ----------------------------------------------------------------------------------------------


@pytest.fixture()
def second_service(state, settings, tmp_path):
    """A task service over its own data dir, running on the shared server's queue (one worker for both)."""
    from sdapi.serving.base import ServerState
    from sdapi.serving.tasks import TaskService

    other = ServerState(settings=dataclasses.replace(settings, data_dir=tmp_path), options=state.options,
                        catalog=state.catalog, engine=state.engine, loras=state.loras)
    other.queue, other.control = state.queue, state.control
    services = []

    def start():
        services.append(TaskService(other))
        return services[-1]

    yield other, start
    for service in services:
        service.shutdown()


def seed_store(settings_dir, rows):
    from sdapi.tasks.store import TaskStore

    store = TaskStore(settings_dir / "agent_scheduler" / "tasks.sqlite3")
    for priority, (task_id, status, attempts) in enumerate(rows, start=1):
        store.add({"id": task_id, "type": "txt2img", "status": status, "attempts": attempts,
                   "request": {**TINY, "prompt": task_id}, "params": {"prompt": task_id}, "priority": priority})
    store.close()


def test_restart_runs_pending_tasks_and_reruns_a_running_task_once(second_service, tmp_path, worker_held):
    other, start = second_service
    ids = {name: f"00000000-0000-4000-8000-00000000000{i}" for i, name in enumerate(["ran1", "ran2", "pending"])}
    seed_store(tmp_path, [(ids["ran1"], "running", 1), (ids["ran2"], "running", 2), (ids["pending"], "pending", 0)])
    service = start()
    assert service.store.get(ids["ran2"])["status"] == "failed"
    assert "stopped while this task ran, 2 times" in service.store.get(ids["ran2"])["result"]
    assert [t["id"] for t in service.store.queue_page(10, 0)] == [ids["ran1"], ids["pending"]]  # in its place
    worker_held.set()
    for name in ("pending", "ran1"):
        done = poll(lambda: service.store.get(ids[name]), lambda t: t["status"] in FINAL)
        assert done["status"] == "done"
        assert service.results.path(ids[name], json.loads(done["result"])["images"][0]) is not None
    assert service.store.get(ids["ran1"])["attempts"] == 2


def test_history_older_than_the_limit_is_pruned_but_bookmarks_stay(second_service, tmp_path):
    other, start = second_service
    old, kept, recent = (f"00000000-0000-4000-8000-00000000001{i}" for i in range(3))
    seed_store(tmp_path, [(old, "done", 1), (kept, "done", 1), (recent, "done", 1)])
    service = start()
    service.results.write(old, [b"\x89PNG old"])
    long_ago = 1_000_000.0
    service.store.update(old, finished_at=long_ago)
    service.store.update(kept, finished_at=long_ago, bookmarked=1)
    service.store.update(recent, finished_at=9e12)
    assert service.prune_history() == 1
    assert service.store.get(old) is None and not (tmp_path / "agent_scheduler" / "results" / old).exists()
    assert service.store.get(kept) is not None and service.store.get(recent) is not None


# -- auth ----------------------------------------------------------------------------------------------------


def test_api_auth_guards_every_agent_scheduler_route(settings, state, tasks):
    from sdapi.app import create_app

    app = create_app(dataclasses.replace(settings, api_auth="alice:secret"), state=state, load_model=False)
    with TestClient(app) as guarded:
        for method, path in [("get", "/queue"), ("get", "/history"), ("get", "/samplers"), ("get", "/export"),
                             ("post", "/queue/txt2img"), ("post", "/task/x/unbookmark"), ("post", "/import")]:
            r = getattr(guarded, method)(f"{BASE}{path}")
            assert r.status_code == 401 and r.json()["detail"] == "Not authenticated", path
        assert guarded.get(f"{BASE}/queue", auth=("alice", "secret")).status_code == 200
        assert guarded.post(f"{BASE}/queue/txt2img", json=TINY, auth=("alice", "wrong")).status_code == 401
