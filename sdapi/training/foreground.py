"""``sdapi train CONFIG``: the server's trainer in the foreground, with a tqdm progress bar.

The same validation and engine as ``POST /lora/train``; no job record is kept (the files and their metadata
are the record). The first Ctrl-C stops at the next step boundary and saves the current state, as a cancel with
``save_current`` does on the server; a second one aborts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from sdapi.dataset.paths import PathGuard
from sdapi.engine.api import TrainingJob
from sdapi.engine.factory import local_engine
from sdapi.settings import Settings
from sdapi.startup import open_catalog
from sdapi.training.config_file import read_config, request_from_config
from sdapi.training.reporter import CancelFlag
from sdapi.training.tb_events import EventWriter, run_dir
from sdapi.training.validate import ValidationContext, build_plan

log = logging.getLogger("sdapi")


class ConsoleReporter:
    """Reports a foreground job with tqdm and the log.

    Args:
        total: the job's optimizer steps.
        events: TensorBoard writer, or ``None``.
    """

    def __init__(self, total: int, events: EventWriter | None):
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True)
        self.events = events
        self.cancel = CancelFlag(save_current=True)
        self.outputs: list[dict[str, Any]] = []

    def status(self, status: str, text: str | None = None) -> None:
        self.bar.set_description(text or status)

    def log(self, message: str) -> None:
        self.bar.write(message)

    def step(self, report) -> None:
        self.bar.update(report.step - self.bar.n)
        self.bar.set_postfix(epoch=f"{report.epoch}/{report.total_epochs}", loss=f"{report.average:.4f}")
        if self.events is not None:
            self.events.scalars(report.step, {"loss/current": report.loss, "loss/average": report.average,
                                              "lr/unet": report.lr_unet, "lr/textencoder": report.lr_text_encoder})

    def epoch_end(self, epoch: int, step: int, epoch_average: float) -> None:
        if self.events is not None:
            self.events.scalars(epoch, {"loss/epoch_average": epoch_average})

    def saved(self, output: dict[str, Any]) -> None:
        self.outputs.append(output)
        self.bar.write(f"saved {output['path']} ({output['shorthash']})")

    def sampled(self, sample: dict[str, Any]) -> None:
        self.bar.write(f"sample {sample['file']}")

    def should_stop(self) -> bool:
        return self.cancel.requested

    def save_on_stop(self) -> bool:
        return self.cancel.save_current

    def close(self) -> None:
        self.bar.close()
        if self.events is not None:
            self.events.close()


def train_foreground(config_path: Path, settings: Settings, device: str = "auto") -> list[dict[str, Any]]:
    """Validate a config file and train it here.

    Args:
        config_path: a kohya/lora-scripts ``.toml`` or ``.json``.
        settings: the folders, as ``sdapi serve`` takes them: data dir (relative paths), dataset roots, checkpoint
            folder (the built-in demo checkpoint when it is empty), LoRA folder, cache dir.
        device: ``auto``, ``cuda`` or ``cpu``.

    Returns:
        The saved files' records.

    Raises:
        ConfigError: a field that cannot work.
    """
    req = request_from_config(read_config(config_path))
    catalog = open_catalog(settings)
    guard = PathGuard.for_settings(settings)
    job_dir = settings.data_dir / "training" / "cli" / time.strftime("%Y%m%d%H%M%S")
    engine = local_engine(dataclasses.replace(settings, device=device))
    context = ValidationContext(guard, settings.loras_dir, catalog.find, cuda=engine.device_name() == "cuda")
    plan = build_plan(req, context, job_dir)
    events = EventWriter(run_dir(plan.logging_dir, req.log_prefix, time.time())) if plan.logging_dir else None
    reporter = ConsoleReporter(plan.schedule.total_steps, events)
    for note in plan.notes:
        reporter.log(note)
    model_hash, legacy = catalog.hashes(req.pretrained_model_name_or_path, plan.checkpoint)
    try:
        with ctrl_c_cancels(reporter):
            engine.train(TrainingJob(plan, job_dir, model_hash, legacy), reporter)
    finally:
        reporter.close()
    return reporter.outputs


@contextlib.contextmanager
def ctrl_c_cancels(reporter: ConsoleReporter) -> Iterator[None]:
    """The first Ctrl-C asks the trainer to stop and save at its next step; a second one raises as usual."""
    def on_interrupt(signum, frame) -> None:
        if reporter.cancel.requested:
            raise KeyboardInterrupt
        reporter.log("interrupted: saving the current state at the next step (Ctrl-C again to abort)")
        reporter.cancel.requested = True

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread (tests): no handler to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
