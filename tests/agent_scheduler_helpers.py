"""Helpers for the Agent Scheduler tests: requests, fixtures (the shared server's task service left clean, a held
worker), a callback receiver on localhost, and polling without timing asserts."""

from __future__ import annotations

import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

FINAL = ("done", "failed", "interrupted")
BASE = "/agent-scheduler/v1"
TINY = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}
PNG_URL = "data:image/png;base64,"


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """The form fields and ``files`` parts of a ``multipart/form-data`` body, as a receiver (Flask, FastAPI) sees
    them."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, Any] = {"files": []}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename() is not None:
            fields["files"].append((name, part.get_filename(), part.get_content_type(), data))
        else:
            fields[name] = data.decode()
    return fields


class CallbackReceiver:
    """A tiny ``http.server`` on a free loopback port recording every callback POST.

    Args:
        fail_first: answer this many POSTs with a 500 first (to see the sender retry).
    """

    def __init__(self, fail_first: int = 0):
        self.posts: list[dict[str, Any]] = []
        self.refused = 0
        self._fail_first = fail_first
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._cond:
                    if receiver.refused < receiver._fail_first:
                        receiver.refused += 1
                        status = 500
                    else:
                        post = parse_multipart(self.headers["Content-Type"], body)
                        post["path"] = self.path
                        receiver.posts.append(post)
                        receiver._cond.notify_all()
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 120) -> list[dict]:
        """Block until ``predicate(posts)`` holds (generous timeout; no assertion on how long it took)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"callbacks never satisfied the condition; got {len(self.posts)} posts")
                self._cond.wait(left)
            return list(self.posts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 120, every: float = 0.05) -> Any:
    """Call ``fetch`` until ``done(value)``; return that value (an AssertionError with the last one otherwise)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(every)
    raise AssertionError(f"condition not reached in {timeout} s; last value: {str(value)[:2000]}")



def queue_task(client, kind: str = "txt2img", **fields) -> str:
    r = client.post(f"{BASE}/queue/{kind}", json={**TINY, **fields})
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def task(client, task_id: str) -> dict:
    body = client.get(f"{BASE}/task/{task_id}").json()
    assert body["success"], body
    return body["data"]


def wait_final(client, task_id: str, timeout: float = 120) -> dict:
    return poll(lambda: task(client, task_id), lambda t: t["status"] in FINAL, timeout)


def queued_ids(client) -> list[str]:
    return [t["id"] for t in client.get(f"{BASE}/queue", params={"limit": 1000}).json()["pending_tasks"]]


@pytest.fixture()
def tasks(client, state):
    """The shared server's task service, left empty, resumed and idle afterwards."""
    yield state.tasks
    client.post(f"{BASE}/queue/resume")
    client.post(f"{BASE}/queue/clear")
    poll(lambda: client.get(f"{BASE}/queue").json(), lambda q: q["total_pending_tasks"] == 0)
    client.post(f"{BASE}/history/clear")


@pytest.fixture()
def worker_held(state):
    """Hold the worker with a blocker job, so what is queued meanwhile waits; set the event to let it go."""
    started, release = threading.Event(), threading.Event()

    def block():
        started.set()
        release.wait(120)

    state.queue.submit(block, "test blocker")
    assert started.wait(60)
    yield release
    release.set()
