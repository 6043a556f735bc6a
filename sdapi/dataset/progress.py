"""Where a long dataset job reports its progress: the server's job control (``/progress``, see
``sdapi.serving.dataset.JobProgress``) or a tqdm bar (CLI)."""

from __future__ import annotations

from typing import Protocol


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
