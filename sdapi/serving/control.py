"""What the running job tells the outside world, and what the outside world can tell it (interrupt, skip).

The worker writes progress through the engine's :class:`sdapi.engine.api.JobEvents` methods; HTTP handlers read it
and set ``interrupted``/``skipped``. Like A1111, the counters of the last job stay readable after it ends; only
``job_count`` drops to 0, which is what "idle" means.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable


def _never() -> bool:
    return False


@dataclass
class JobControl:
    """Shared state of the one running job, with A1111's ``shared.state`` field names.

    Every field is written under the lock; ``/progress`` reads a consistent :meth:`snapshot`.
    """

    job: str = ""
    job_count: int = 0
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    flag_interrupted: bool = False
    skipped: bool = False
    job_timestamp: str = "0"
    textinfo: str | None = None
    time_start: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # The running batch's preview source (rendered only when /progress asks) and the last rendering.
    _preview_source: Any = field(default=None, repr=False)
    _preview: str | None = field(default=None, repr=False)
    _preview_step: int = -1
    # Whether the queue cancelled the job that is running now (its client left); set per job by the queue.
    _cancelled: Callable[[], bool] = field(default=_never, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- the queue --------------------------------------------------------------------------------------------

    def bind_job(self, cancelled: Callable[[], bool]) -> None:
        """The queue starts a job: ``cancelled`` tells whether that job (and only that one) was cancelled."""
        with self._lock:
            self._cancelled = cancelled

    # -- the job (engine events) ------------------------------------------------------------------------------

    def begin(self, job_count: int, timestamp: str) -> None:
        with self._lock:
            self.job, self.job_count, self.job_no = "", job_count, 0
            self.sampling_step = self.sampling_steps = 0
            self.flag_interrupted = self.skipped = False
            self.job_timestamp = timestamp
            self.textinfo = None
            self.time_start = time.time()
            self._clear_preview()
            self.warnings = []

    def next_batch(self, steps: int | None = None) -> None:
        with self._lock:
            self.skipped = False
            if steps is not None:
                self.sampling_step, self.sampling_steps = 0, steps
            self._clear_preview()
            if self.job_count > 1:
                self.job = f"Batch {self.job_no + 1} out of {self.job_count}"

    def next_pass(self) -> None:
        """A second sampling pass of the same batch (hires fix): A1111's ``nextjob``; interrupt/skip flags stay."""
        with self._lock:
            self.job_no += 1

    def sampling(self, steps: int) -> None:
        """A sampling run starts (A1111's ``launch_sampling``)."""
        with self._lock:
            self.sampling_step, self.sampling_steps = 0, steps

    def batch_done(self) -> None:
        with self._lock:
            self.job_no += 1
            self.sampling_step = 0

    def step(self, step: int, preview: Any = None) -> None:
        with self._lock:
            self.sampling_step = step
            self._preview_source = preview

    def warn(self, message: str) -> None:
        """Something in the job was not applied as asked; the response's ``info`` lists it."""
        with self._lock:
            self.warnings.append(message)

    def end(self) -> None:
        """The job is over, whether it succeeded or failed: the server is idle again."""
        with self._lock:
            self.job_count = 0
            self.job = ""
            self._preview_source = None

    @property
    def interrupted(self) -> bool:
        """The running job must not start another batch: ``/interrupt``, or its client went away."""
        return self.flag_interrupted or self._cancelled()

    def should_stop(self) -> bool:
        """True when the current batch must stop sampling (interrupt, skip, or a cancelled job)."""
        return self.flag_interrupted or self.skipped or self._cancelled()

    # -- HTTP handlers ----------------------------------------------------------------------------------------

    def interrupt(self) -> None:
        with self._lock:
            self.flag_interrupted = True

    def skip(self) -> None:
        with self._lock:
            self.skipped = True

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the public fields (what ``/progress`` reports)."""
        with self._lock:
            return {
                "job": self.job, "job_count": self.job_count, "job_no": self.job_no,
                "sampling_step": self.sampling_step, "sampling_steps": self.sampling_steps,
                "interrupted": self.flag_interrupted, "skipped": self.skipped, "job_timestamp": self.job_timestamp,
                "textinfo": self.textinfo, "time_start": self.time_start,
            }

    def current_preview(self, every: int, render: Callable[[Any], str | None]) -> str | None:
        """The live preview, rendered again when ``every`` steps have passed since the last rendering
        (A1111's ``set_current_image``); the last rendering otherwise.

        Args:
            every: ``show_progress_every_n_steps`` (-1: never render).
            render: turns the engine's preview into the encoded image (``None`` when it has none).
        """
        with self._lock:
            due = (every != -1 and self._preview_source is not None
                   and self.sampling_step - self._preview_step >= every)
            if due:
                rendered = render(self._preview_source)
                if rendered is not None:
                    self._preview, self._preview_step = rendered, self.sampling_step
            return self._preview

    def _clear_preview(self) -> None:
        self._preview_source, self._preview, self._preview_step = None, None, -1
