"""The callback sender's policy (what is retried, how often, bounded) and its transport's guards (no redirect
followed, a receiver that never answers is cut off), the task store's ordering, and the job queue's unbounded jobs
(task slots) and withdrawal."""

from __future__ import annotations

import socket
import threading

import pytest

from sdapi.jobs import JobQueue, QueueFull
from sdapi.tasks.callbacks import (
    CallbackPolicy,
    CallbackSender,
    Delivery,
    Unreachable,
    check_callback_url,
    encode_multipart,
    post,
    redact_url,
)
from sdapi.tasks.store import TaskStore
from tests.agent_scheduler_helpers import CallbackReceiver, parse_multipart, poll

FAST = CallbackPolicy(max_attempts=3, first_delay_s=0.01, max_delay_s=0.02, timeout_s=5, attempt_deadline_s=5)


def run_sender(answers: list) -> tuple[list[dict], list[str]]:
    """Send one callback through a fake transport answering ``answers`` in turn (an exception is raised)."""
    outcomes, urls = [], []
    answers = list(answers)

    def transport(url, body, content_type, policy):
        urls.append(url)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sender = CallbackSender(lambda task_id: Delivery("http://receiver/hook", {"task_id": task_id}),
                            lambda task_id, outcome: outcomes.append(outcome), FAST, send=transport)
    sender.send("t")
    poll(lambda: outcomes, lambda o: o and o[-1]["status"] != "pending", timeout=30, every=0.01)
    sender.stop()
    return outcomes, urls


def test_delivered_on_2xx():
    outcomes, _ = run_sender([204])
    assert outcomes == [{"status": "delivered", "attempts": 1, "http_status": 204}]


def test_5xx_429_and_unreachable_are_retried_until_the_limit():
    outcomes, urls = run_sender([503, 429, Unreachable("refused")])
    assert [o["status"] for o in outcomes] == ["pending", "pending", "failed"]
    assert outcomes[-1] == {"status": "failed", "attempts": 3, "error": "unreachable"}
    assert len(urls) == FAST.max_attempts


@pytest.mark.parametrize("status", [301, 400, 404])
def test_other_answers_end_the_delivery(status):
    outcomes, urls = run_sender([status])
    assert outcomes == [{"status": "failed", "attempts": 1, "http_status": status}] and len(urls) == 1


def test_backoff_doubles_up_to_the_cap():
    policy = CallbackPolicy(first_delay_s=1, max_delay_s=5)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/cb", "https://example.com/a?b=c", "HTTP://Example.com"])
def test_accepted_callback_urls(url):
    assert check_callback_url(url) == url


@pytest.mark.parametrize("url", ["ftp://x/", "gopher://x/", "file:///etc/passwd", "http://", "//host/path",
                                 "http://host:0x50/", "http://ho st/", "http://host/\r\nX: y", "x" * 3000])
def test_refused_callback_urls(url):
    with pytest.raises(ValueError):
        check_callback_url(url)


def test_password_in_a_callback_url_is_not_shown():
    assert redact_url("https://bot:hunter2@example.com/cb") == "https://bot:***@example.com/cb"
    assert redact_url("https://example.com/cb") == "https://example.com/cb"


def test_multipart_body_reads_back_as_form_fields_and_files():
    body, content_type = encode_multipart({"task_id": "t1", "status": "done"},
                                          [("t1-00000.png", "image/png", b"\x89PNG1"), ("b.jpg", "image/jpeg", b"2")])
    form = parse_multipart(content_type, body)
    assert form["task_id"] == "t1" and form["status"] == "done"
    assert form["files"] == [("files", "t1-00000.png", "image/png", b"\x89PNG1"), ("files", "b.jpg", "image/jpeg", b"2")]


def test_post_does_not_follow_redirects():
    target = CallbackReceiver()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def redirect_once():
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target.url}/\r\n"
                             "Content-Length: 0\r\n\r\n".encode())

        threading.Thread(target=redirect_once, daemon=True).start()
        status = post(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"x", "text/plain", FAST)
    assert status == 307 and target.posts == []
    target.close()


def test_a_receiver_that_never_answers_is_cut_off_at_the_deadline():
    policy = CallbackPolicy(timeout_s=60, attempt_deadline_s=0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection (the kernel does) and never answers
        with pytest.raises(Unreachable):
            post(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"x", "text/plain", policy)


def test_store_runs_pending_tasks_by_priority_and_tracks_positions(tmp_path):
    store = TaskStore(tmp_path / "tasks.sqlite3")
    for name, priority in [("a", 5), ("b", 5), ("c", 3), ("done", 1)]:
        store.add({"id": name, "type": "txt2img", "status": "done" if name == "done" else "pending",
                   "request": {}, "params": {}, "priority": priority})
    assert [t["id"] for t in store.queue_page(10, 0)] == ["c", "a", "b"]  # equal priorities: insertion order
    assert [store.position(t) for t in ("c", "a", "b", "done")] == [0, 1, 2, None]
    assert store.move_before("b", "c")
    assert [t["id"] for t in store.queue_page(10, 0)] == ["b", "c", "a"]
    assert not store.move_before("a", "done")  # only among pending tasks
    assert store.claim("b") and not store.claim("b")
    assert store.get("b")["attempts"] == 1 and store.first_pending()["id"] == "c"
    assert store.next_priority() > 5 and store.first_priority() < store.get("c")["priority"]
    store.close()
    reopened = TaskStore(tmp_path / "tasks.sqlite3")
    assert reopened.get("b")["status"] == "running" and reopened.count(["pending"]) == 2


def test_task_slots_wait_in_line_without_counting_against_the_bound_and_can_be_withdrawn():
    queue = JobQueue(max_pending=1)
    started, release, ran = threading.Event(), threading.Event(), []
    queue.submit(lambda: (started.set(), release.wait(30)), "blocker")
    assert started.wait(30)
    slots = [queue.submit(lambda i=i: ran.append(f"slot {i}"), f"slot {i}", bounded=False) for i in range(3)]
    request = queue.submit(lambda: ran.append("request"), "request")
    with pytest.raises(QueueFull):
        queue.submit(lambda: None, "second request")
    assert queue.withdraw(slots[1]) and slots[1].future.cancelled() and not queue.withdraw(slots[1])
    release.set()
    request.future.result(30)
    assert ran == ["slot 0", "slot 2", "request"]
    assert not queue.withdraw(slots[0])  # it ran: left alone
    queue.stop()
