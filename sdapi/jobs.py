"""The job queue: one worker thread runs device work (generation, model switches) one job at a time, in order.

A1111 serialises generation with a lock; a lock is not fair, so under load requests can finish out of order.
A FIFO queue with one worker keeps arrival order, and lets a job whose client went away be dropped before it
starts (or stopped while it runs) instead of running for nobody. Cancelling marks that one job: the running job
sees its own flag (``on_start`` hands it over), so a cancel can never reach the job after it. The queue holds
at most ``max_pending`` waiting jobs; past that it refuses new ones (A1111 has no limit and no answer but a
timeout). Jobs submitted with ``bounded=False`` (queued Agent Scheduler tasks, bounded by their own limit) wait in
the same line but do not count: a long task queue must not turn away a synchronous request.

An engine whose jobs run elsewhere (Ray Serve replicas) asks for one worker per replica: each worker blocks on its
own remote job, so the replicas work at once while the jobs still start in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Hashable, Protocol, runtime_checkable

log = logging.getLogger("sdapi")


@runtime_checkable
class Mergeable(Protocol):
    """A job's ``run`` that may run together with queued runs of the same ``merge_key`` (cross-request batching).

    ``merge_key`` is ``None`` when it must run alone; ``images`` counts against the batch limit.
    """

    merge_key: Hashable | None
    images: int

    def __call__(self) -> Any: ...

    def run_together(self, others: list["Mergeable"]) -> list[Any]:
        """Run this and ``others`` as one job; each one's result, or the exception it failed with."""


class JobCancelled(Exception):
    """The job's client went away before it finished; nobody is waiting for a response."""


class QueueFull(Exception):
    """The queue already holds ``max_pending`` waiting jobs (503 with ``Retry-After``)."""

    status_code = 503
    headers = {"Retry-After": "5"}

    def __init__(self, max_pending: int):
        super().__init__(f"the server's job queue is full ({max_pending} jobs waiting); retry later")
        self.max_pending = max_pending


class ShuttingDown(Exception):
    """The server is stopping: queued jobs are failed with this, new ones refused (503)."""

    status_code = 503


@dataclass
class Batching:
    """How queued jobs are merged into one batch.

    Args:
        max_images: most images a merged batch holds (``--max-batch``); 1 turns merging off.
        wait_s: how long the worker waits for partners while requests are still arriving (``--batch-wait-ms``).
        capacity: ``run -> images`` the device fits for a batch like ``run``'s (memory-aware); default no limit
            beyond ``max_images``.
    """

    max_images: int = 1
    wait_s: float = 0.0
    capacity: Callable[[Any], int] | None = None

    def limit(self, run: Any) -> int:
        if self.capacity is None:
            return self.max_images
        return max(1, min(self.max_images, self.capacity(run)))


@dataclass
class Job:
    """One unit of device work.

    Args:
        run: called on the worker thread; its return value (or exception) resolves ``future``.
        name: for logs (e.g. ``txt2img``).
        number: arrival order.
        bounded: counts towards ``max_pending``.
    """

    run: Callable[[], Any]
    name: str
    number: int
    future: Future = field(default_factory=Future)
    cancelled: bool = False
    bounded: bool = True


class JobQueue:
    """FIFO of jobs served by lazily started daemon worker threads (one, unless the engine runs jobs in parallel).

    Args:
        on_start: called on the worker with each job's "was I cancelled" test, just before it runs.
        max_pending: how many jobs may wait behind the running ones (``None``: no limit).
        workers: how many jobs run at once. One keeps A1111's order; an engine with several replicas (Ray) takes
            as many workers as replicas, each blocked on its own remote job.
    """

    def __init__(self, on_start: Callable[[Callable[[], bool]], None] | None = None,
                 max_pending: int | None = None, batching: "Batching | None" = None, workers: int = 1):
        self._pending: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._numbers = itertools.count(1)
        self._workers: list[threading.Thread] = []
        self.workers = max(1, int(workers))
        # Each worker's running group, by worker thread.
        self._running: dict[threading.Thread, list[Job]] = {}
        self._stopped = False
        self._on_start = on_start
        self._arriving = 0
        self.max_pending = max_pending
        self.batching = batching or Batching()

    # -- submitting --------------------------------------------------------------------------------------

    def submit(self, run: Callable[[], Any], name: str, bounded: bool = True) -> Job:
        """Queue ``run``; the returned job's future resolves when it has run.

        Args:
            bounded: refuse the job when ``max_pending`` bounded jobs wait, and count it among them.

        Raises:
            QueueFull: ``max_pending`` jobs are already waiting.
            ShuttingDown: the queue was stopped.
        """
        with self._cond:
            if self._stopped:
                raise ShuttingDown("the server is shutting down")
            if bounded and self.max_pending is not None and \
                    sum(job.bounded for job in self._pending) >= self.max_pending:
                raise QueueFull(self.max_pending)
            job = Job(run=run, name=name, number=next(self._numbers), bounded=bounded)
            self._pending.append(job)
            self._ensure_workers()
            self._cond.notify()
        return job

    @contextlib.contextmanager
    def arriving(self):
        """A request is being checked and will be submitted: a worker merging jobs may wait for it."""
        with self._cond:
            self._arriving += 1
        try:
            yield
        finally:
            with self._cond:
                self._arriving -= 1
                self._cond.notify_all()

    def run_sync(self, run: Callable[[], Any], name: str) -> Any:
        """Queue ``run`` and wait for it on the calling (non-event-loop) thread."""
        return self.submit(run, name).future.result()

    async def run_async(self, run: Callable[[], Any], name: str,
                        client_gone: Callable[[], Awaitable[Any]] | None = None) -> Any:
        """Queue ``run`` and await it; cancel the job if the awaitable ``client_gone()`` completes first."""
        return await self.wait_async(self.submit(run, name), client_gone)

    async def wait_async(self, job: Job, client_gone: Callable[[], Awaitable[Any]] | None = None) -> Any:
        """Await a submitted job; cancel it if the awaitable ``client_gone()`` completes first."""
        result = asyncio.wrap_future(job.future)
        if client_gone is None:
            return await result
        watcher = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({result, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not result.done():
                log.info("Client of job #%d (%s) went away: cancelling it", job.number, job.name)
                self.cancel(job)
                result.cancel()
            watcher.cancel()
        if result.cancelled():
            raise JobCancelled(f"job #{job.number} ({job.name})")
        return result.result()

    def cancel(self, job: Job) -> None:
        """Drop a queued job, or mark the running one so that it stops at its next step."""
        with self._cond:
            job.cancelled = True
            if job in self._pending:
                self._pending.remove(job)
                job.future.cancel()

    def withdraw(self, job: Job) -> bool:
        """Drop ``job`` if it has not started; unlike :meth:`cancel`, a started job is left alone.

        Returns:
            Whether the job was dropped.
        """
        with self._cond:
            if job not in self._pending:
                return False
            self._pending.remove(job)
            job.cancelled = True
            job.future.cancel()
            return True

    # -- state -------------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Jobs waiting (not counting the running one)."""
        with self._cond:
            return len(self._pending)

    @property
    def running(self) -> list[Job]:
        """The running jobs (one per busy worker), with the jobs merged into them."""
        with self._cond:
            return [job for group in self._running.values() for job in group]

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._running) or bool(self._pending)

    def stop(self, timeout: float | None = 5.0) -> None:
        """Refuse new jobs, fail queued ones, stop the running job at its next step and wait for it.

        Queued jobs fail with :class:`ShuttingDown`, so their clients get an answer rather than a dropped
        connection.

        Args:
            timeout: how long to wait for the running job; ``None``: do not wait (a signal handler).
        """
        with self._cond:
            self._stopped = True
            while self._pending:
                job = self._pending.popleft()
                job.cancelled = True
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(ShuttingDown("the server is shutting down; the job did not run"))
            for group in self._running.values():
                for job in group:
                    job.cancelled = True
            self._cond.notify_all()
            workers = list(self._workers)
        if timeout is not None:
            deadline = time.monotonic() + timeout
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))

    # -- the worker --------------------------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        """Start the missing workers (called with the lock held)."""
        self._workers = [worker for worker in self._workers if worker.is_alive()]
        while len(self._workers) < self.workers:
            name = "sdapi-worker" if self.workers == 1 else f"sdapi-worker-{len(self._workers)}"
            worker = threading.Thread(target=self._work, name=name, daemon=True)
            self._workers.append(worker)
            worker.start()

    def _next(self) -> list[Job] | None:
        """The next job, with the queued jobs it may run together with; ``None`` once stopped."""
        with self._cond:
            while not self._pending and not self._stopped:
                self._cond.wait()
            if not self._pending:
                return None
            group = [self._pending.popleft()]
            self._gather(group)
            self._running[threading.current_thread()] = group
        if self._on_start is not None:
            self._on_start(lambda: all(job.cancelled for job in group))
        return group

    def _gather(self, group: list[Job]) -> None:
        """Add queued jobs with the head job's merge key (in arrival order, within the batch limit), waiting up to
        ``batching.wait_s`` while requests are still arriving. Called with the lock held."""
        head = group[0].run
        if not isinstance(head, Mergeable) or head.merge_key is None:
            return
        limit = self.batching.limit(head)
        images = head.images
        deadline = time.monotonic() + self.batching.wait_s
        while images < limit:
            for job in list(self._pending):
                run = job.run
                if isinstance(run, Mergeable) and run.merge_key == head.merge_key and images + run.images <= limit:
                    self._pending.remove(job)
                    group.append(job)
                    images += run.images
            remaining = deadline - time.monotonic()
            if images >= limit or self._arriving == 0 or remaining <= 0 or self._stopped:
                return
            self._cond.wait(remaining)

    def _work(self) -> None:
        while (group := self._next()) is not None:
            try:
                live = [job for job in group if job.future.set_running_or_notify_cancel()]
                if len(live) == 1:
                    self._settle(live[0], live[0].run)
                elif live:
                    self._settle_together(live)
            finally:
                with self._cond:
                    self._running.pop(threading.current_thread(), None)

    @staticmethod
    def _settle(job: Job, run: Callable[[], Any]) -> None:
        try:
            job.future.set_result(run())
        except BaseException as exc:  # noqa: BLE001 - the submitter re-raises it
            job.future.set_exception(exc)

    def _settle_together(self, jobs: list[Job]) -> None:
        log.info("Running jobs %s together", ", ".join(f"#{job.number}" for job in jobs))
        try:
            outcomes = jobs[0].run.run_together([job.run for job in jobs[1:]])
        except BaseException as exc:  # noqa: BLE001 - every member gets the failure
            outcomes = [exc] * len(jobs)
        for job, outcome in zip(jobs, outcomes):
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
