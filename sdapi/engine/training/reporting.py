"""What the trainer tells the job around it (progress, files, samples) and asks it (stop?)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class StepReport:
    """One optimizer step.

    Args:
        step, total_steps: optimizer steps done / planned.
        epoch, total_epochs: the current epoch (1-based) / planned.
        loss: this step's loss; ``average`` the moving average over the last epoch's worth of steps.
        lr_unet, lr_text_encoder: current learning rates (``None`` when that part does not train).
        it_per_s: optimizer steps per second so far; ``eta_s`` seconds left at that speed.
    """

    step: int
    total_steps: int
    epoch: int
    total_epochs: int
    loss: float
    average: float
    lr_unet: float | None
    lr_text_encoder: float | None
    it_per_s: float
    eta_s: float


class Reporter(Protocol):
    """The trainer's view of its job."""

    def status(self, status: str, text: str | None = None) -> None:
        """A phase change: ``preparing``, ``running``, ``sampling``, ``saving``."""

    def log(self, message: str) -> None:
        """A line for the job log."""

    def step(self, report: StepReport) -> None:
        """After every optimizer step."""

    def epoch_end(self, epoch: int, step: int, epoch_average: float) -> None:
        """After every epoch."""

    def saved(self, output: dict[str, Any]) -> None:
        """A file is in place (final name, hashes known)."""

    def sampled(self, sample: dict[str, Any]) -> None:
        """A sample image is written."""

    def should_stop(self) -> bool:
        """Cancel requested: stop at this step boundary."""

    def save_on_stop(self) -> bool:
        """Whether a cancelled job writes ``{name}-cancelled.safetensors``."""


@dataclass
class TrainResult:
    """How a job ended: ``done`` or ``cancelled``, with its files."""

    status: str
    step: int
    outputs: list[dict[str, Any]] = field(default_factory=list)
