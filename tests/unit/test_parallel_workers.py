"""A queue with several workers (Ray mode: one per engine replica), each job with its own job control."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sdapi.jobs import JobQueue
from sdapi.serving import progress
from sdapi.serving.controls import JobControls
from sdapi.serving.task_ids import TaskIds


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


def two_running_tasks():
    """Two running jobs on two workers, ``task(a)`` the older (300 steps), ``task(b)`` (200 steps)."""
    controls, ids = JobControls(2), TaskIds()
    first, second = controls.all
    for control, steps, task_id in ((first, 300, "task(a)"), (second, 200, "task(b)")):
        control.begin(1, "0")
        control.next_batch(steps)
        ids.queued(task_id)
        ids.started(task_id, control)
    second.time_start = first.time_start + 1
    state = SimpleNamespace(controls=controls, task_ids=ids, control=controls.visible(),
                            options={"live_previews_enable": False, "show_progress_every_n_steps": 1})
    return state, first, second


def test_progress_follows_the_named_task_else_the_oldest():
    state, first, second = two_running_tasks()
    steps = lambda **kw: progress.progress(state, True, **kw)["state"]["sampling_steps"]  # noqa: E731
    assert steps(id_task="task(b)") == 200
    assert steps(id_task="task(a)") == steps() == steps(id_task="task(gone)") == 300
    assert progress.internal_progress(state, "task(b)", live_preview=False)["active"] is True


def test_interrupt_and_skip_with_an_id_reach_that_job_alone():
    state, first, second = two_running_tasks()
    progress.skip(state, "task(a)")
    assert first.skipped and not second.skipped
    progress.interrupt(state, "task(b)")
    assert second.interrupted and not first.interrupted
    progress.interrupt(state, "task(queued-or-gone)")  # not running: nothing to stop
    assert not first.interrupted
    progress.interrupt(state)  # no id: every running job
    assert first.interrupted and second.interrupted
