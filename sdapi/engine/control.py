"""What a running job tells the outside world, and what the outside world can tell it (interrupt, skip)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class JobControl:
    """Shared state of the one running generation job.

    The worker writes progress; HTTP handlers read it and set ``interrupted``/``skipped``.
    """

    job_count: int = 0
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    interrupted: bool = False
    skipped: bool = False
    job_timestamp: str = "0"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, job_count: int, timestamp: str) -> None:
        with self._lock:
            self.job_count, self.job_no = job_count, 0
            self.sampling_step = self.sampling_steps = 0
            self.interrupted = self.skipped = False
            self.job_timestamp = timestamp

    def next_batch(self, steps: int) -> None:
        with self._lock:
            self.skipped = False
            self.sampling_step, self.sampling_steps = 0, steps

    def batch_done(self) -> None:
        with self._lock:
            self.job_no += 1

    def step(self, step: int) -> None:
        with self._lock:
            self.sampling_step = step

    def end(self) -> None:
        with self._lock:
            self.job_count = self.job_no = 0
            self.sampling_step = self.sampling_steps = 0

    def should_stop(self) -> bool:
        """True when the current batch must stop sampling (interrupt or skip)."""
        return self.interrupted or self.skipped
