"""A queue with several workers (Ray mode: one per engine replica), each job with its own job control."""

from __future__ import annotations

import threading

from sdapi.jobs import JobQueue
from sdapi.serving.controls import JobControls


def test_two_workers_run_two_jobs_at_once_and_each_keeps_its_own_control():
    controls = JobControls(2)
    queue = JobQueue(on_start=controls.bind_job, workers=2)
    both_running = threading.Barrier(2, timeout=5)

    def job(name: str):
        control = controls.current()
        control.begin(1, "0")
        control.warn(name)
        both_running.wait()  # fails unless the other job runs at the same time
        try:
            return control.warnings
        finally:
            control.end()

    jobs = [queue.submit(lambda n=n: job(n), n) for n in ("a", "b")]
    assert sorted(tuple(j.future.result(5)) for j in jobs) == [("a",), ("b",)]
    queue.stop()


def test_interrupt_reaches_every_running_job_and_progress_shows_the_oldest():
    controls = JobControls(2)
    first, second = controls.all
    first.begin(1, "0")
    second.begin(1, "0")
    second.time_start = first.time_start + 1
    assert controls.visible() is first
    controls.interrupt()
    assert first.interrupted and second.interrupted


def test_one_worker_keeps_a1111s_single_state():
    controls = JobControls(1)
    controls.interrupt()  # idle, as A1111: the flag is set and the next job's begin() clears it
    assert controls.current() is controls.visible() is controls.all[0]
    assert controls.all[0].flag_interrupted
