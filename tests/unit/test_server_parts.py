"""The serving building blocks without HTTP: job queue, progress formula, auth, flags, option coercion."""

from __future__ import annotations

import base64
import threading
import time

import pytest

from sdapi.errors import InvalidRequest
from sdapi.http import NotAuthenticated, check_basic_auth, parse_credentials
from sdapi.jobs import JobQueue, QueueFull, ShuttingDown
from sdapi.options import coerce_option
from sdapi.serving.control import JobControl
from sdapi.serving.progress import STATE_KEYS, fraction_done, progress_body
from sdapi.settings import Settings
from sdapi.system import cmd_flags, hide_credentials
from sdapi.engine.upscalers import UPSCALERS, find_upscaler


def test_queue_runs_jobs_one_at_a_time_in_order():
    queue, running, order = JobQueue(), [], []
    lock = threading.Lock()

    def job(i):
        with lock:
            running.append(i)
            assert len(running) == 1
        time.sleep(0.01)
        order.append(i)
        with lock:
            running.remove(i)
        return i * 10

    jobs = [queue.submit(lambda i=i: job(i), "t") for i in range(6)]
    assert [j.future.result(5) for j in jobs] == [0, 10, 20, 30, 40, 50]
    assert order == list(range(6))


def test_queue_reraises_job_errors_and_keeps_serving():
    queue = JobQueue()
    with pytest.raises(ZeroDivisionError):
        queue.run_sync(lambda: 1 / 0, "bad")
    assert queue.run_sync(lambda: "ok", "good") == "ok"


def test_cancel_drops_a_queued_job_and_stops_only_the_running_one():
    control = JobControl()
    release = threading.Event()
    seen = []

    def long_job():
        release.wait(5)
        seen.append(("long", control.should_stop()))

    queue = JobQueue(on_start=control.bind_job)
    running = queue.submit(long_job, "long")
    queued = queue.submit(lambda: pytest.fail("a cancelled job ran"), "never")
    while not queue.busy or queue.pending != 1:
        time.sleep(0.001)
    queue.cancel(queued)
    assert queued.future.cancelled() and queue.pending == 0
    queue.cancel(running)
    release.set()
    running.future.result(5)
    after = queue.submit(lambda: seen.append(("next", control.should_stop())), "next")
    after.future.result(5)
    assert seen == [("long", True), ("next", False)]


def test_a_late_cancel_never_reaches_the_next_job():
    # The old queue released its lock before interrupting, so cancelling a job that had just finished could
    # interrupt the job the worker started next. A cancel now marks its own job only.
    control = JobControl()
    queue = JobQueue(on_start=control.bind_job)
    first_done, second_started, finish = threading.Event(), threading.Event(), threading.Event()
    first = queue.submit(lambda: first_done.set(), "first")
    seen = []

    def second():
        second_started.set()
        finish.wait(5)
        seen.append(control.should_stop() or control.interrupted)

    nxt = queue.submit(second, "second")
    second_started.wait(5)
    queue.cancel(first)
    finish.set()
    nxt.future.result(5)
    assert first_done.is_set() and seen == [False]


def test_the_queue_is_bounded_and_says_when_to_retry():
    release = threading.Event()
    queue = JobQueue(max_pending=2)
    running = queue.submit(lambda: release.wait(5), "running")
    while not queue.busy or queue.pending:
        time.sleep(0.001)
    waiting = [queue.submit(lambda: None, "w") for _ in range(2)]
    with pytest.raises(QueueFull) as err:
        queue.submit(lambda: None, "one too many")
    assert err.value.status_code == 503 and err.value.headers == {"Retry-After": "5"}
    release.set()
    running.future.result(5)
    for job in waiting:
        job.future.result(5)


def test_stop_fails_queued_jobs_and_refuses_new_ones():
    release = threading.Event()
    control = JobControl()
    queue = JobQueue(on_start=control.bind_job)
    running = queue.submit(lambda: (release.wait(5), control.should_stop())[1], "running")
    queued = queue.submit(lambda: None, "queued")
    while not queue.busy or queue.pending != 1:
        time.sleep(0.001)
    stopper = threading.Thread(target=queue.stop)
    stopper.start()
    with pytest.raises(ShuttingDown):
        queued.future.result(5)
    release.set()
    stopper.join(5)
    assert running.future.result(5) is True  # the running job was told to stop
    with pytest.raises(ShuttingDown):
        queue.submit(lambda: None, "late")


def _snapshot(**kw):
    base = dict(job="", job_count=2, job_no=1, sampling_step=5, sampling_steps=20, interrupted=False,
                skipped=False, job_timestamp="20260101000000", textinfo=None, time_start=100.0, latents=None)
    return {**base, **kw}


@pytest.mark.parametrize("snapshot, expected", [
    (_snapshot(), 0.01 + 1 / 2 + 0.5 * 5 / 20),
    (_snapshot(job_count=1, job_no=0, sampling_step=0, sampling_steps=30), 0.01),
    (_snapshot(job_count=1, job_no=0, sampling_step=4, sampling_steps=30), 0.01 + 4 / 30),
    (_snapshot(job_count=1, job_no=1, sampling_step=30, sampling_steps=30), 1.0),
    (_snapshot(sampling_steps=0, sampling_step=0), 0.01 + 0.5),
])
def test_progress_formula_is_a1111s(snapshot, expected):
    assert fraction_done(snapshot) == pytest.approx(expected)


def test_progress_body_eta_and_idle():
    body = progress_body(_snapshot(), now=110.0, current_image="img")
    progress = 0.01 + 0.5 + 0.125
    assert body["eta_relative"] == pytest.approx(10.0 / progress - 10.0)
    assert list(body["state"]) == list(STATE_KEYS) and body["current_image"] == "img"
    idle = progress_body(_snapshot(job_count=0), now=110.0, current_image="img")
    assert (idle["progress"], idle["eta_relative"], idle["current_image"]) == (0.0, 0.0, None)


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_parse_and_check():
    creds = parse_credentials("a:1, b:p:w")
    assert creds == {"a": "1", "b": "p:w"}
    assert check_basic_auth(_basic("b", "p:w"), creds) == "b"
    for header, detail in [(None, "Not authenticated"), ("Bearer x", "Not authenticated"),
                           (_basic("a", "2"), "Incorrect username or password"),
                           (_basic("c", "1"), "Incorrect username or password")]:
        with pytest.raises(NotAuthenticated) as err:
            check_basic_auth(header, creds)
        assert err.value.detail == detail and err.value.status_code == 401
    with pytest.raises(ValueError):
        parse_credentials("nopassword")


def test_cmd_flags_reflect_settings_and_hide_passwords(tmp_path):
    settings = Settings(data_dir=tmp_path, api_auth="u:secret,v:other", port=7861, host="0.0.0.0",
                        launch_flags={"nowebui": True, "medvram": True, "not_an_a1111_flag": 1})
    flags = cmd_flags(settings)
    assert flags["api_auth"] == "u:********,v:********" and "secret" not in str(flags)
    assert flags["port"] == "7861" and flags["listen"] is True and flags["nowebui"] is True
    assert flags["medvram"] is True and "not_an_a1111_flag" not in flags
    assert hide_credentials(None) is None


@pytest.mark.parametrize("key, value, default, expected", [
    ("CLIP_stop_at_last_layers", 2.0, 1, 2),
    ("CLIP_stop_at_last_layers", "3", 1, 3),
    ("eta_ddim", "0.5", 0.0, 0.5),
    ("send_seed", "off", True, False),
    ("samples_format", "jpg", "png", "jpg"),
    ("sd_lora", 123, "None", 123),  # extension option without a schema type: kept as posted
])
def test_coerce_option(key, value, default, expected):
    coerced = coerce_option(key, value, default)
    assert coerced == expected and type(coerced) is type(expected)


def test_coerce_option_refuses_impossible_values():
    with pytest.raises(InvalidRequest):
        coerce_option("jpeg_quality", [1], 80)


@pytest.mark.parametrize("name, size", [("None", (10, 10)), ("Lanczos", (40, 30)), ("Nearest", (40, 30))])
def test_upscaler_rows(name, size):
    from PIL import Image

    spec = find_upscaler(name)
    assert spec is not None and spec.as_item()["name"] == name and spec.as_item()["scale"] == 4.0
    assert spec.upscale(Image.new("RGB", (10, 10)), 40, 30).size == size
    assert [u.name for u in UPSCALERS][:3] == ["None", "Lanczos", "Nearest"]
