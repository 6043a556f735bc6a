"""The job queue's merging of queued runs (cross-request batching), with fake runs: who merges, in which order,
within which limit, how long the worker waits, and what a failure or a cancel reaches."""

from __future__ import annotations

import threading

from sdapi.jobs import Batching, JobQueue


class FakeRun:
    """A mergeable run: records how it ran, and answers its name (or raises ``error``)."""

    def __init__(self, name: str, key="k", images: int = 1, log: list | None = None, error: Exception | None = None,
                 hold: threading.Event | None = None):
        self.name, self.merge_key, self.images = name, key, images
        self.log = log if log is not None else []
        self.error = error
        self.hold = hold

    def __call__(self):
        self.log.append((self.name,))
        if self.hold is not None:
            assert self.hold.wait(30)
        if self.error is not None:
            raise self.error
        return self.name

    def run_together(self, others):
        members = [self, *others]
        self.log.append(tuple(run.name for run in members))
        return [run.error if run.error is not None else run.name for run in members]


def held_queue(batching: Batching, log: list) -> tuple[JobQueue, threading.Event]:
    """A queue whose worker is busy with an unmergeable job until the returned event is set."""
    queue = JobQueue(batching=batching)
    release = threading.Event()
    queue.submit(FakeRun("first", key=None, log=log, hold=release), "first")
    while not queue.busy or queue.pending:
        threading.Event().wait(0.01)
    return queue, release


def test_queued_runs_with_one_key_run_together_in_arrival_order():
    log: list = []
    queue, release = held_queue(Batching(max_images=8), log)
    jobs = [queue.submit(FakeRun(name, key=key, log=log), name)
            for name, key in (("a", "k"), ("b", "other"), ("c", "k"), ("d", None), ("e", "k"))]
    release.set()
    assert [job.future.result(30) for job in jobs] == ["a", "b", "c", "d", "e"]
    assert log == [("first",), ("a", "c", "e"), ("b",), ("d",)]


def test_a_batch_holds_at_most_the_limit_and_later_runs_wait_their_turn():
    log: list = []
    queue, release = held_queue(Batching(max_images=4, capacity=lambda run: 3), log)
    jobs = [queue.submit(FakeRun(name, images=images, log=log), name)
            for name, images in (("a", 2), ("b", 2), ("c", 1), ("d", 1))]
    release.set()
    for job in jobs:
        job.future.result(30)
    # capacity 3 < max_images 4: a (2) + c (1); b (2) + d (1).
    assert log == [("first",), ("a", "c"), ("b", "d")]


def test_merging_off_runs_every_job_alone():
    log: list = []
    queue, release = held_queue(Batching(max_images=1), log)
    jobs = [queue.submit(FakeRun(name, log=log), name) for name in "abc"]
    release.set()
    assert [job.future.result(30) for job in jobs] == ["a", "b", "c"]
    assert log == [("first",), ("a",), ("b",), ("c",)]


def test_each_member_gets_its_own_failure():
    log: list = []
    queue, release = held_queue(Batching(max_images=8), log)
    good = queue.submit(FakeRun("good", log=log), "good")
    bad = queue.submit(FakeRun("bad", log=log, error=ValueError("only mine")), "bad")
    release.set()
    assert good.future.result(30) == "good"
    assert isinstance(bad.future.exception(30), ValueError)


def test_a_cancelled_member_stops_the_batch_only_when_every_member_is_cancelled():
    seen: list = []
    queue = JobQueue(on_start=lambda cancelled: seen.append(cancelled), batching=Batching(max_images=8))
    release = threading.Event()
    queue.submit(FakeRun("first", key=None, hold=release), "first")
    while not queue.busy or queue.pending:
        threading.Event().wait(0.01)
    started = threading.Event()

    class Watching(FakeRun):
        def run_together(self, others):
            started.set()
            assert self.hold.wait(30)
            return super().run_together(others)

    gate = threading.Event()
    a = queue.submit(Watching("a", hold=gate), "a")
    b = queue.submit(FakeRun("b"), "b")
    release.set()
    assert started.wait(30)
    batch_cancelled = seen[-1]
    queue.cancel(a)
    assert not batch_cancelled()
    queue.cancel(b)
    assert batch_cancelled()
    gate.set()
    a.future.result(30)


def test_the_worker_waits_for_requests_still_arriving_but_not_for_nobody():
    log: list = []
    queue = JobQueue(batching=Batching(max_images=8, wait_s=30))
    arrived = threading.Event()

    def arrive_late():
        with queue.arriving():
            arrived.set()
            threading.Event().wait(0.2)
            queue.submit(FakeRun("late", log=log), "late")

    with queue.arriving():
        first = queue.submit(FakeRun("early", log=log), "early")
        thread = threading.Thread(target=arrive_late)
        thread.start()
        assert arrived.wait(30)
    assert first.future.result(60) == "early"
    thread.join(30)
    assert log == [("early", "late")]
    # Nobody arriving: a lone run starts at once, whatever wait_s says.
    alone = queue.submit(FakeRun("alone", log=log), "alone")
    assert alone.future.result(10) == "alone"
