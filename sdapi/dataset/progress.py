"""Where a long dataset job reports its progress: the server's job control (``/progress``) or a tqdm bar (CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class Progress(Protocol):
    """What a dataset job tells the outside world, and the one thing it is told back (stop)."""

    def start(self, total: int) -> None:
        """``total`` units (images) of work follow."""

    def describe(self, text: str) -> None:
        """What is being done now (A1111's ``textinfo``)."""

    def advance(self) -> None:
        """One unit is done."""

    def should_stop(self) -> bool:
        """True when the job was asked to stop (``/sdapi/v1/interrupt``)."""

    def finish(self) -> None:
        """The job is over, whether it succeeded or failed."""


class JobProgress:
    """Progress through the server's ``JobControl``, so ``/sdapi/v1/progress`` reports it as A1111 does.

    Args:
        control: the server's job control (:class:`sdapi.serving.control.JobControl`).
        job: the job name ``/progress`` shows (A1111: ``preprocess``).
    """

    def __init__(self, control: Any, job: str):
        self.control, self.job = control, job

    def start(self, total: int) -> None:
        # A1111's job_timestamp format; sdapi.translate has the same helper but pulls in torch.
        self.control.begin(job_count=total, timestamp=datetime.now().strftime("%Y%m%d%H%M%S"))
        self.control.job = self.job

    def describe(self, text: str) -> None:
        self.control.textinfo = text

    def advance(self) -> None:
        self.control.batch_done()

    def should_stop(self) -> bool:
        return self.control.interrupted

    def finish(self) -> None:
        self.control.end()


class TqdmProgress:
    """Progress as a tqdm bar on stderr (the CLI); never stops early.

    Args:
        unit: what is counted (``image``).
    """

    def __init__(self, unit: str = "image"):
        self.unit = unit
        self.bar = None

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit=self.unit)

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def should_stop(self) -> bool:
        return False

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
