"""The job queue: one worker thread runs device work (generation, model switches) one job at a time, in order.

A1111 serialises generation with a lock; a lock is not fair, so under load requests can finish out of order.
A FIFO queue with one worker keeps arrival order, and lets a job whose client went away be dropped before it
starts (or interrupted while it runs) instead of running for nobody.
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


@dataclass
class Job:
    """One unit of device work.

    Args:
        run: called on the worker thread; its return value (or exception) resolves ``future``.
        name: for logs (e.g. ``txt2img``).
        number: arrival order.
    """

    run: Callable[[], Any]
    name: str
    number: int
    future: Future = field(default_factory=Future)
    cancelled: bool = False


class JobQueue:
    """FIFO of jobs served by one lazily started daemon worker thread.

    Args:
        on_cancel_running: called when the job being run is cancelled (the server interrupts it).
    """

    def __init__(self, on_cancel_running: Callable[[], None] | None = None):
        self._pending: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._numbers = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._running: Job | None = None
        self._stopped = False
        self._on_cancel_running = on_cancel_running

    # -- submitting --------------------------------------------------------------------------------------

    def submit(self, run: Callable[[], Any], name: str) -> Job:
        """Queue ``run``; the returned job's future resolves when it has run."""
        with self._cond:
            if self._stopped:
                raise RuntimeError("the server is shutting down")
            job = Job(run=run, name=name, number=next(self._numbers))
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
        """Drop a queued job, or ask the running one to stop."""
        with self._cond:
            job.cancelled = True
            if job in self._pending:
                self._pending.remove(job)
                job.future.cancel()
                return
            running = self._running is job
        if running and self._on_cancel_running is not None:
            self._on_cancel_running()

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
        """Refuse new jobs, cancel queued ones and let the worker finish the running job."""
        with self._cond:
            self._stopped = True
            while self._pending:
                self._pending.popleft().future.cancel()
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
            return self._running

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
