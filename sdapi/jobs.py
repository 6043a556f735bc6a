"""The job queue: one worker thread runs device work (generation, model switches) one job at a time, in order.

A1111 serialises generation with a lock; a lock is not fair, so under load requests can finish out of order.
A FIFO queue with one worker keeps arrival order, and lets a job whose client went away be dropped before it
starts (or stopped while it runs) instead of running for nobody. Cancelling marks that one job: the running job
sees its own flag (``on_start`` hands it over), so a cancel can never reach the job after it. The queue holds
at most ``max_pending`` waiting jobs; past that it refuses new ones (A1111 has no limit and no answer but a
timeout). Jobs submitted with ``bounded=False`` (queued Agent Scheduler tasks, bounded by their own limit) wait in
the same line but do not count: a long task queue must not turn away a synchronous request.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

log = logging.getLogger("sdapi")


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
    """FIFO of jobs served by one lazily started daemon worker thread.

    Args:
        on_start: called on the worker with each job's "was I cancelled" test, just before it runs.
        max_pending: how many jobs may wait behind the running one (``None``: no limit).
    """

    def __init__(self, on_start: Callable[[Callable[[], bool]], None] | None = None,
                 max_pending: int | None = None):
        self._pending: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._numbers = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._running: Job | None = None
        self._stopped = False
        self._on_start = on_start
        self.max_pending = max_pending

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
            self._ensure_worker()
            self._cond.notify()
        return job

    def run_sync(self, run: Callable[[], Any], name: str) -> Any:
        """Queue ``run`` and wait for it on the calling (non-event-loop) thread."""
        return self.submit(run, name).future.result()

    async def run_async(self, run: Callable[[], Any], name: str,
                        client_gone: Callable[[], Awaitable[Any]] | None = None) -> Any:
        """Queue ``run`` and await it; cancel the job if the awaitable ``client_gone()`` completes first."""
        job = self.submit(run, name)
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
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or bool(self._pending)

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse new jobs, fail queued ones, stop the running job at its next step and wait for it.

        Queued jobs fail with :class:`ShuttingDown`, so their clients get an answer rather than a dropped
        connection.
        """
        with self._cond:
            self._stopped = True
            while self._pending:
                job = self._pending.popleft()
                job.cancelled = True
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(ShuttingDown("the server is shutting down; the job did not run"))
            if self._running is not None:
                self._running.cancelled = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # -- the worker --------------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="sdapi-worker", daemon=True)
            self._worker.start()

    def _next(self) -> Job | None:
        with self._cond:
            while not self._pending and not self._stopped:
                self._cond.wait()
            if not self._pending:
                return None
            self._running = self._pending.popleft()
            job = self._running
        if self._on_start is not None:
            self._on_start(lambda: job.cancelled)
        return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        job.future.set_result(job.run())
                    except BaseException as exc:  # noqa: BLE001 - the submitter re-raises it
                        job.future.set_exception(exc)
            finally:
                with self._cond:
                    self._running = None
