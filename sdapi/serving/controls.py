"""One :class:`JobControl` per queue worker, for engines that run several jobs at once (Ray Serve replicas).

A1111 has one ``shared.state``, and with one worker sdapi keeps exactly that: every caller gets the same control.
With several workers each running job must keep its own counters and warnings, so a worker's thread is given its own
control when its first job starts; code that runs outside a worker (``/progress``, ``/interrupt``) sees the job that
has run longest, and an interrupt or skip reaches every running job, as A1111's reaches "the" job.
"""

from __future__ import annotations

import threading
from typing import Callable

from sdapi.serving.control import JobControl


class JobControls:
    """The controls of a queue's workers.

    Args:
        count: how many workers the queue has.
        controls: existing controls to share (another state's), instead of ``count`` new ones.
    """

    def __init__(self, count: int = 1, controls: list[JobControl] | None = None):
        self.all = list(controls) if controls else [JobControl() for _ in range(max(1, int(count)))]
        self._local = threading.local()
        self._next = 0
        self._lock = threading.Lock()

    def bind_job(self, cancelled: Callable[[], bool]) -> None:
        """The queue starts a job on this worker: give the thread its control (once) and bind the job's cancel
        test to it."""
        self._own().bind_job(cancelled)

    def current(self) -> JobControl:
        """The calling worker's control; outside a worker, the one :meth:`visible` picks."""
        own = getattr(self._local, "control", None)
        return own if own is not None else self.visible()

    def visible(self) -> JobControl:
        """The control ``/progress`` reports: the running job that started first, else the job that ran last."""
        if len(self.all) == 1:
            return self.all[0]
        running = [c for c in self.all if c.job_count > 0]
        if running:
            return min(running, key=lambda c: c.time_start)
        return max(self.all, key=lambda c: c.time_start)

    def running(self) -> list[JobControl]:
        """The controls of the jobs running now."""
        return [c for c in self.all if c.job_count > 0]

    def interrupt(self) -> None:
        """``/interrupt``: every running job stops at its next step (A1111 has one job to stop)."""
        for control in self._targets():
            control.interrupt()

    def skip(self) -> None:
        """``/skip``: every running job skips its current batch."""
        for control in self._targets():
            control.skip()

    def _targets(self) -> list[JobControl]:
        # With one worker the flag is set even when idle, as A1111 does (the next job's begin() clears it).
        return self.all if len(self.all) == 1 else (self.running() or [self.visible()])

    def _own(self) -> JobControl:
        own = getattr(self._local, "control", None)
        if own is None:
            with self._lock:
                own = self.all[self._next % len(self.all)]
                self._next += 1
            self._local.control = own
        return own
