"""End to end: 20 Agent Scheduler tasks survive a ``kill -9`` of a real ``sdapi serve`` process.

A client queues 20 tiny tasks (64x64, 2 steps, the demo checkpoint) with a callback on a localhost receiver, lets
half of them run, kills the server with SIGKILL while the middle task runs, restarts it on the same data dir and
collects all 20 results: none lost, none run twice but the one that was running at the kill (re-run once, as the
README says), every task's images delivered to the callback. Nothing is timed: the middle task has more steps so
that "it is running" is still true a few milliseconds after the client saw it, and every wait polls.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.agent_scheduler_helpers import BASE, CallbackReceiver, poll
from tests.e2e.test_real_server import REPO, _child_env, _free_port, _log_tail, _stop, _wait_ready

pytestmark = pytest.mark.slow

TASKS = 20
MIDDLE = TASKS // 2
MIDDLE_STEPS = 40
TIMEOUT_S = 300


def start_server(root: Path, cache: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "sdapi", "serve", "--data-dir", str(root), "--cache-dir", str(cache),
           "--port", str(port), "--threads", "2"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_child_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(proc, url, log_path)
    return proc, url


def statuses_on_disk(root: Path) -> dict[str, tuple[str, int]]:
    """``id -> (status, attempts)`` read straight from the task database of a dead server."""
    with sqlite3.connect(root / "agent_scheduler" / "tasks.sqlite3") as db:
        return {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, status, attempts FROM tasks")}


def test_twenty_tasks_survive_kill_9(data_dir, fresh_data_dir, tmp_path):
    root, cache, log_path = fresh_data_dir(data_dir), tmp_path / "cache", tmp_path / "server.log"
    receiver = CallbackReceiver()
    proc, url = start_server(root, cache, log_path)
    try:
        # 1. Queue all 20 while paused, so "halfway" means halfway; then let them run.
        assert requests.post(f"{url}{BASE}/queue/pause", timeout=30).json()["success"]
        ids = []
        for i in range(TASKS):
            body = {"prompt": f"task {i}", "seed": 1000 + i, "width": 64, "height": 64,
                    "steps": MIDDLE_STEPS if i == MIDDLE else 2,
                    "checkpoint": "demo-sd15.safetensors", "callback_url": f"{receiver.url}/done"}
            r = requests.post(f"{url}{BASE}/queue/txt2img", json=body, timeout=60)
            assert r.status_code == 200, r.text
            ids.append(r.json()["task_id"])
        assert requests.post(f"{url}{BASE}/queue/resume", timeout=30).json()["success"]
        current = lambda: requests.get(f"{url}{BASE}/queue", timeout=30).json()["current_task_id"]  # noqa: E731
        poll(current, lambda task_id: task_id == ids[MIDDLE], timeout=TIMEOUT_S, every=0.02)

        # 2. kill -9 while the middle task runs, and look at what the dead server left on disk.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        at_kill = statuses_on_disk(root)
        assert [at_kill[task_id][0] for task_id in ids] == ["done"] * MIDDLE + ["running"] + \
            ["pending"] * (TASKS - MIDDLE - 1)
        running = [ids[MIDDLE]]

        # 3. Restart on the same data dir: every task ends done, exactly once each.
        proc, url = start_server(root, cache, log_path)
        history = lambda: requests.get(f"{url}{BASE}/history", params={"limit": 1000}, timeout=30).json()  # noqa: E731
        done = poll(history, lambda h: h["total"] == TASKS, timeout=TIMEOUT_S, every=0.2)
        assert sorted(t["id"] for t in done["tasks"]) == sorted(ids)
        assert {t["status"] for t in done["tasks"]} == {"done"}, [t["result"] for t in done["tasks"]]
        assert requests.get(f"{url}{BASE}/queue", timeout=30).json()["total_pending_tasks"] == 0
        for i, task_id in enumerate(ids):
            task = requests.get(f"{url}{BASE}/task/{task_id}", timeout=30).json()["data"]
            assert task["attempts"] == (2 if task_id in running else 1), (task_id, at_kill[task_id])
            results = requests.get(f"{url}{BASE}/task/{task_id}/results", timeout=60).json()
            assert results["success"] and len(results["data"]) == 1
            assert results["data"][0]["infotext"].startswith(f"task {i}\n")
            assert f"Seed: {1000 + i}," in results["data"][0]["infotext"]

        # 4. Every task's image reached the callback (at least once: one done just before the kill may come twice).
        posts = receiver.wait_for(lambda posts: {p["task_id"] for p in posts} >= set(ids), timeout=TIMEOUT_S)
        for post in posts:
            assert post["status"] == "done" and post["path"] == "/done" and len(post["files"]) == 1
            assert post["files"][0][2] == "image/png"
    except BaseException:
        print(_log_tail(log_path, 8000))
        raise
    finally:
        _stop(proc)
        receiver.close()
