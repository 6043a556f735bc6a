"""Clients of the Agent Scheduler extension, replayed against sdapi unchanged.

* The extension's own UI: every ``fetch`` of ``ui/src/extension/stores/{pending,history,shared}.store.ts``
  (ArtVentureX/sd-webui-agent-scheduler), with its method, path, query, headers and body, and the fields the UI
  reads from each answer; the deprecated paths its older ``pending.store.ts`` used too.
* A public Rust client that queues with ``reqwest`` (a JSON string body without a ``Content-Type``), polls
  ``/task/{id}`` into a struct that requires ``priority`` and ``created_at``/``updated_at`` strings, and strips
  ``data:image/png;base64,`` from ``/results``.
* The body of the extension's ``/docs`` example as users post it (``checkpoint: ""``, ``callback_url: ""``,
  ``script_name: ""``, later-A1111 fields such as ``hr_prompt``).

(A public Flask app receiving callbacks reads ``form["task_id"]``, ``form["status"]`` and the ``files`` parts'
file names and content types: ``test_agent_scheduler.py::test_callback_receives_every_tasks_images``.)
"""

from __future__ import annotations

import base64
import io
import json
from urllib.parse import quote

import pytest
from PIL import Image

from tests.agent_scheduler_helpers import (  # noqa: F401 - tasks and worker_held are fixtures
    BASE,
    FINAL,
    poll,
    queue_task,
    task,
    tasks,
    wait_final,
    worker_held,
)

JSON = {"Content-Type": "application/json"}
UI_PARAMS = ("prompt", "negative_prompt", "checkpoint", "sampler_name", "steps", "cfg_scale", "width", "height",
             "batch_size", "n_iter")


def ui_task_fields(t: dict) -> None:
    """What the UI's grid reads from a task."""
    assert isinstance(t["id"], str) and t["type"] in ("txt2img", "img2img")
    assert t["status"] in ("pending", "running", *FINAL) and isinstance(t["priority"], int)
    assert all(key in t["params"] for key in UI_PARAMS)
    assert "name" in t and isinstance(t["created_at"], int) and isinstance(t["updated_at"], int)


def test_extension_ui_pending_tab(client, tasks, worker_held):  # noqa: F811
    # shared.store.ts: the samplers and checkpoints of the edit dropdowns
    samplers = client.get(f"{BASE}/samplers").json()
    checkpoints = client.get(f"{BASE}/sd-models").json()
    assert "Euler a" in samplers and all(isinstance(c, str) for c in checkpoints) and checkpoints

    ids = [queue_task(client, prompt=f"ui {i}") for i in range(3)]
    # refresh(): fetch('/agent-scheduler/v1/queue?limit=1000') then setState(data)
    state = client.get(f"{BASE}/queue?limit=1000").json()
    assert set(state) >= {"current_task_id", "total_pending_tasks", "pending_tasks", "paused"}
    assert state["total_pending_tasks"] == 3 and [t["id"] for t in state["pending_tasks"]] == ids
    for t in state["pending_tasks"]:
        ui_task_fields(t)

    # updateTask(id, task): PUT with the grid row's edited values (checkpoint from the row, "System" = none)
    row = state["pending_tasks"][0]
    edited = {"name": "edited", "checkpoint": checkpoints[0],
              "params": {"prompt": "ui edited", "negative_prompt": row["params"]["negative_prompt"],
                         "sampler_name": "DDIM", "steps": 3, "cfg_scale": 6.5}}
    r = client.put(f"{BASE}/task/{ids[0]}", content=json.dumps(edited), headers=JSON).json()
    assert r == {"success": True, "message": "Task updated."}
    row = task(client, ids[0])
    assert (row["name"], row["params"]["prompt"], row["params"]["sampler_name"], row["params"]["steps"],
            row["params"]["cfg_scale"], row["params"]["checkpoint"]) == ("edited", "ui edited", "DDIM", 3, 6.5,
                                                                         checkpoints[0])
    system = {**edited, "checkpoint": "System"}
    assert client.put(f"{BASE}/task/{ids[0]}", content=json.dumps(system), headers=JSON).json()["success"]
    assert task(client, ids[0])["params"]["checkpoint"] is None

    # moveTask(id, overId) after a drag, with the row below or 'bottom'; runTask(id)
    assert client.post(f"{BASE}/task/{ids[2]}/move/{ids[0]}").json()["success"]
    assert client.post(f"{BASE}/task/{ids[0]}/move/bottom").json()["success"]
    assert [t["id"] for t in client.get(f"{BASE}/queue?limit=1000").json()["pending_tasks"]] == [ids[2], ids[1], ids[0]]
    assert client.post(f"{BASE}/task/{ids[1]}/run").json()["success"]

    # exportQueue() / importQueue(str): the file the UI downloads, read back as text
    exported = client.get(f"{BASE}/export").json()
    content = json.dumps(exported)
    r = client.post(f"{BASE}/import", content=json.dumps({"content": content}), headers=JSON).json()
    assert r == {"success": True, "message": "Queue imported"}
    assert client.get(f"{BASE}/queue?limit=1000").json()["total_pending_tasks"] == 6

    # pauseQueue() / resumeQueue(): notify(data) shows data.message
    assert client.post(f"{BASE}/queue/pause").json() == {"success": True, "message": "Queue paused."}
    assert client.get(f"{BASE}/queue?limit=1000").json()["paused"] is True
    assert client.post(f"{BASE}/queue/resume").json() == {"success": True, "message": "Queue resumed."}

    # deleteTask(id), then clearQueue()
    assert client.delete(f"{BASE}/task/{ids[2]}").json() == {"success": True, "message": "Task deleted"}
    assert client.post(f"{BASE}/queue/clear").json() == {"success": True, "message": "Queue cleared."}
    assert client.get(f"{BASE}/queue?limit=1000").json()["pending_tasks"] == []


def test_extension_ui_older_paths(client, tasks, worker_held):  # noqa: F811
    ids = [queue_task(client, prompt=f"old {i}") for i in range(2)]
    assert client.post(f"{BASE}/pause").json()["message"] == "Queue paused."
    assert client.post(f"{BASE}/resume").json()["message"] == "Queue resumed."
    assert client.post(f"{BASE}/move/{ids[1]}/{ids[0]}").json()["message"] == "Task moved"
    assert client.post(f"{BASE}/run/{ids[0]}").json()["success"]
    assert client.post(f"{BASE}/delete/{ids[1]}").json() == {"success": True, "message": "Task deleted"}
    worker_held.set()
    done = wait_final(client, ids[0])
    assert client.post(f"{BASE}/bookmark/{ids[0]}").json()["success"]
    assert client.post(f"{BASE}/unbookmark/{ids[0]}").json()["success"]
    assert client.post(f"{BASE}/rename/{ids[0]}?name=x").json()["success"]
    assert client.post(f"{BASE}/requeue/{ids[0]}").json()["success"]
    assert client.get(f"{BASE}/results/{done['id']}").json()["success"]


def test_extension_ui_history_tab(client, state, tasks, monkeypatch):  # noqa: F811
    done = wait_final(client, queue_task(client, prompt="history ok"))
    def fail(job, events):
        raise RuntimeError("out of paint")

    monkeypatch.setattr(state.engine, "generate", fail)
    failed = wait_final(client, queue_task(client, prompt="history failed"))
    monkeypatch.undo()

    # refresh(): status '' until a filter is picked, then 'done', 'failed', 'bookmarked', ...
    history = client.get(f"{BASE}/history?status=&limit=1000&offset=0").json()
    assert history["total"] == 2 and [t["id"] for t in history["tasks"]] == [failed["id"], done["id"]]
    for t in history["tasks"]:
        ui_task_fields(t)
    assert [t["id"] for t in client.get(f"{BASE}/history?status=failed&limit=1000&offset=0").json()["tasks"]] == \
        [failed["id"]]

    # bookmarkTask(id, bookmarked), renameTask(id, name): a JSON content type and no body
    assert client.post(f"{BASE}/task/{done['id']}/bookmark").json() == {"success": True,
                                                                      "message": "Task bookmarked"}
    assert client.get(f"{BASE}/history?status=bookmarked&limit=1000&offset=0").json()["total"] == 1
    name = "my task / 1 & 2"
    r = client.post(f"{BASE}/task/{done['id']}/rename?name={quote(name, safe='')}", headers=JSON).json()
    assert r == {"success": True, "message": "Task renamed."} and task(client, done["id"])["name"] == name

    # the gallery of a selected task: its results
    results = client.get(f"{BASE}/task/{done['id']}/results").json()
    assert results["success"] and results["data"][0]["infotext"].startswith("history ok")

    # requeueTask(id), requeueFailedTasks(), clearHistory()
    assert client.post(f"{BASE}/task/{done['id']}/requeue").json() == {"success": True, "message": "Task requeued"}
    assert client.post(f"{BASE}/task/requeue-failed").json() == {"success": True,
                                                               "message": "Requeued 1 failed tasks"}
    poll(lambda: client.get(f"{BASE}/queue").json(), lambda q: q["total_pending_tasks"] == 0)
    assert client.post(f"{BASE}/history/clear").json() == {"success": True, "message": "History cleared."}
    assert [t["id"] for t in client.get(f"{BASE}/history?status=&limit=1000&offset=0").json()["tasks"]] == \
        [done["id"]]  # the bookmarked one stays
    client.post(f"{BASE}/task/{done['id']}/unbookmark")


def test_rust_client_queue_poll_and_results(client, tasks):  # noqa: F811
    # serde_json::to_string(&RequestBody) posted with reqwest's .body(): no Content-Type header at all
    body = json.dumps({"prompt": "a rusty robot", "batch_size": 1, "steps": 2, "width": 64, "height": 64,
                       "sampler_name": "Euler a", "cfg_scale": 7, "script_name": "",
                       "checkpoint": "demo-sd15.safetensors"})
    r = client.post(f"{BASE}/queue/txt2img", content=body.encode())
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]

    status = poll(lambda: client.get(f"{BASE}/task/{task_id}").json(),
                  lambda s: s["data"]["status"] in FINAL)
    data = status["data"]  # TaskStatusData: required fields with these types
    assert status["success"] is True and data["status"] == "done" and data["type"] == "txt2img"
    assert isinstance(data["priority"], int) and isinstance(data["params"], dict)
    assert isinstance(data["created_at"], str) and isinstance(data["updated_at"], str)
    assert all(key in data for key in ("api_task_id", "api_task_callback", "name", "position", "result",
                                       "bookmarked"))

    results = client.get(f"{BASE}/task/{task_id}/results").json()
    image = results["data"][0]["image"].removeprefix("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(image))).size == (64, 64)
    assert isinstance(results["data"][0]["infotext"], str)


def test_extension_docs_example_body(client, tasks):  # noqa: F811
    body = {
        "enable_hr": False, "denoising_strength": 0, "firstphase_width": 0, "firstphase_height": 0, "hr_scale": 2,
        "hr_upscaler": "", "hr_second_pass_steps": 0, "hr_resize_x": 0, "hr_resize_y": 0, "hr_sampler_name": "",
        "hr_prompt": "", "hr_negative_prompt": "", "prompt": "spider man", "styles": [""], "seed": -1, "subseed": -1,
        "subseed_strength": 0, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "sampler_name": "Euler a",
        "batch_size": 1, "n_iter": 1, "steps": 2, "cfg_scale": 7, "width": 64, "height": 64, "restore_faces": False,
        "tiling": False, "do_not_save_samples": False, "do_not_save_grid": False, "negative_prompt": "", "eta": 0,
        "s_min_uncond": 0, "s_churn": 0, "s_tmax": 0, "s_tmin": 0, "s_noise": 1, "override_settings": {},
        "override_settings_restore_afterwards": True, "script_args": [], "script_name": "", "alwayson_scripts": {},
        "checkpoint": "", "callback_url": "",
    }
    r = client.post(f"{BASE}/queue/txt2img", json=body)
    assert r.status_code == 200, r.text
    done = wait_final(client, r.json()["task_id"])
    assert done["status"] == "done", done["result"]
    assert done["api_task_callback"] is None and done["params"]["checkpoint"] is None


@pytest.mark.parametrize("status", ["all", "done", "interrupted", "pending", "nonsense"])
def test_history_status_filters_answer(client, tasks, status):  # noqa: F811
    body = client.get(f"{BASE}/history", params={"status": status}).json()
    assert set(body) == {"tasks", "total"} and body["total"] == len(body["tasks"])
