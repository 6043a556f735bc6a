"""What a running job tells the outside world, and what the outside world can tell it (interrupt, skip).

Pure Python (no torch): the serving layer reads it for ``/progress``; the sampling loop writes it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobControl:
    """Shared state of the one running generation job, with A1111's ``shared.state`` field names.

    The worker writes progress; HTTP handlers read it and set ``interrupted``/``skipped``. Like A1111, the counters of
    the last job stay readable after it ends; only ``job_count`` drops to 0, which is what "idle" means.
    """

    job: str = ""
    job_count: int = 0
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    interrupted: bool = False
    skipped: bool = False
    job_timestamp: str = "0"
    textinfo: str | None = None
    time_start: float = 0.0
    # The latest latents of the running batch, for live previews; read by /progress, never copied per step.
    latents: Any = field(default=None, repr=False)
    preview: Any = field(default=None, repr=False)
    preview_step: int = -1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, job_count: int, timestamp: str) -> None:
        with self._lock:
            self.job, self.job_count, self.job_no = "", job_count, 0
            self.sampling_step = self.sampling_steps = 0
            self.interrupted = self.skipped = False
            self.job_timestamp = timestamp
            self.textinfo = None
            self.time_start = time.time()
            self.latents, self.preview, self.preview_step = None, None, -1

    def next_batch(self, steps: int) -> None:
        with self._lock:
            self.skipped = False
            self.sampling_step, self.sampling_steps = 0, steps
            self.latents, self.preview, self.preview_step = None, None, -1
            if self.job_count > 1:
                self.job = f"Batch {self.job_no + 1} out of {self.job_count}"

    def next_pass(self, steps: int) -> None:
        """A second sampling pass of the same batch (hires fix): A1111's ``nextjob``; interrupt/skip flags stay."""
        with self._lock:
            self.job_no += 1
            self.sampling_step, self.sampling_steps = 0, steps

    def batch_done(self) -> None:
        with self._lock:
            self.job_no += 1
            self.sampling_step = 0

    def step(self, step: int, latents: Any = None) -> None:
        with self._lock:
            self.sampling_step = step
            self.latents = latents

    def end(self) -> None:
        """The job is over, whether it succeeded or failed: the server is idle again."""
        with self._lock:
            self.job_count = 0
            self.job = ""
            self.latents = None

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True

    def skip(self) -> None:
        with self._lock:
            self.skipped = True

    def should_stop(self) -> bool:
        """True when the current batch must stop sampling (interrupt or skip)."""
        return self.interrupted or self.skipped

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the public fields (what ``/progress`` reports)."""
        with self._lock:
            return {
                "job": self.job, "job_count": self.job_count, "job_no": self.job_no,
                "sampling_step": self.sampling_step, "sampling_steps": self.sampling_steps,
                "interrupted": self.interrupted, "skipped": self.skipped, "job_timestamp": self.job_timestamp,
                "textinfo": self.textinfo, "time_start": self.time_start, "latents": self.latents,
            }
