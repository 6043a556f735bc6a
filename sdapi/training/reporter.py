"""The running job's side of the trainer's :class:`Reporter`: job record, loss rows, log, TensorBoard, /progress.

Progress lives in memory for readers and reaches the database at most once a second (and at every epoch end,
save and status change); loss rows are buffered the same way; outputs and samples are recorded at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdapi.training.store import JobStore
from sdapi.training.tb_events import EventWriter

log = logging.getLogger("sdapi")

FLUSH_SECONDS = 1.0
LOG_TAIL_LINES = 30


@dataclass
class CancelFlag:
    """Set by ``POST /lora/train/{id}/cancel``; read by the trainer at each step boundary."""

    requested: bool = False
    save_current: bool = False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a job log ("" when there is none)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class JobReporter:
    """Records one job's progress.

    Args:
        job_id: the job.
        store: the job database.
        control: the server's ``JobControl`` (what ``/sdapi/v1/progress`` shows).
        log_path: the job's text log.
        cancel: the job's cancel flag.
        events: TensorBoard writer, or ``None``.
        on_saved: called after each file is recorded (refreshes the LoRA catalog).
    """

    job_id: str
    store: JobStore
    control: Any
    log_path: Path
    cancel: CancelFlag
    events: EventWriter | None = None
    on_saved: Any = None
    progress: dict[str, Any] = field(default_factory=dict)
    _losses: list[tuple] = field(default_factory=list)
    _flushed: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def log(self, message: str) -> None:
        log.info("LoRA training %s: %s", self.job_id[:8], message)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")

    def status(self, status: str, text: str | None = None) -> None:
        self.progress["phase"] = status
        if text:
            self.log(text)
            self.control.textinfo = text
        if status in ("preparing", "running"):
            self.store.update(self.job_id, status=status, progress=self.progress)

    def step(self, report) -> None:
        self.progress.update(step=report.step, total_steps=report.total_steps, epoch=report.epoch,
                             total_epochs=report.total_epochs, fraction=report.step / max(1, report.total_steps),
                             it_per_s=report.it_per_s, eta_s=report.eta_s, loss=report.loss, avg_loss=report.average,
                             lr_unet=report.lr_unet, lr_te=report.lr_text_encoder)
        self._losses.append((report.step, report.epoch, report.loss, report.average, report.lr_unet,
                             report.lr_text_encoder))
        self.control.step(report.step)
        self.control.textinfo = (f"LoRA training: epoch {report.epoch}/{report.total_epochs}, step {report.step}/"
                                 f"{report.total_steps}, loss {report.average:.4f}")
        if self.events is not None:
            self.events.scalars(report.step, {"loss/current": report.loss, "loss/average": report.average,
                                              "lr/unet": report.lr_unet, "lr/textencoder": report.lr_text_encoder})
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def epoch_end(self, epoch: int, step: int, epoch_average: float) -> None:
        self.progress["epoch_average"] = epoch_average
        self.log(f"epoch {epoch} done at step {step}: average loss {epoch_average:.5f}")
        if self.events is not None:
            self.events.scalars(epoch, {"loss/epoch_average": epoch_average})
        self.flush()

    def saved(self, output: dict[str, Any]) -> None:
        self.store.append(self.job_id, "outputs", output)
        self.log(f"saved {output['path']} (sshs_model_hash {output['shorthash']})")
        if self.on_saved is not None:
            self.on_saved()

    def sampled(self, sample: dict[str, Any]) -> None:
        self.store.append(self.job_id, "samples", sample)

    def should_stop(self) -> bool:
        return self.cancel.requested

    def save_on_stop(self) -> bool:
        return self.cancel.save_current

    def flush(self) -> None:
        """Write buffered loss rows and the progress to the database."""
        rows, self._losses = self._losses, []
        self.store.add_losses(self.job_id, rows)
        self.store.update(self.job_id, progress=self.progress)
        if self.events is not None:
            self.events.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self.events is not None:
            self.events.close()
