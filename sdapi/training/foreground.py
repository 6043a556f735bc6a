"""``sdapi train CONFIG``: the server's trainer in the foreground, with a tqdm progress bar.

The same validation and trainer as ``POST /lora/train``; no job record is kept (the files and their metadata
are the record). Ctrl-C cancels at the next step boundary and saves ``{name}-cancelled.safetensors``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sdapi.app import open_catalog
from sdapi.settings import Settings
from sdapi.training.config_file import read_config, request_from_config
from sdapi.training.reporter import CancelFlag
from sdapi.training.tb_events import EventWriter, run_dir

log = logging.getLogger("sdapi")


class ConsoleReporter:
    """Reports a foreground job with tqdm and the log.

    Args:
        total: the job's optimizer steps.
        events: TensorBoard writer, or ``None``.
    """

    def __init__(self, total: int, events: EventWriter | None):
        from tqdm import tqdm

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
    import torch

    from sdapi.dataset.paths import PathGuard
    from sdapi.engine.training.trainer import LoraTrainer, TrainEnvironment
    from sdapi.training.validate import ValidationContext, build_plan

    req = request_from_config(read_config(config_path))
    catalog = open_catalog(settings)
    guard = PathGuard.for_settings(settings)
    job_dir = settings.data_dir / "training" / "cli" / time.strftime("%Y%m%d%H%M%S")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    plan = build_plan(req, ValidationContext(guard, settings.loras_dir, catalog.find, cuda=device == "cuda"), job_dir)
    events = EventWriter(run_dir(plan.logging_dir, req.log_prefix, time.time())) if plan.logging_dir else None
    reporter = ConsoleReporter(plan.schedule.total_steps, events)
    for note in plan.notes:
        reporter.log(note)
    model_hash, legacy = catalog.hashes(req.pretrained_model_name_or_path, plan.checkpoint)
    env = TrainEnvironment(torch.device(device), settings.cache_dir, job_dir, model_hash, legacy)
    trainer = LoraTrainer(plan, env, reporter)
    try:
        try:
            trainer.run()
        except KeyboardInterrupt:
            if trainer.step > 0:
                reporter.log("interrupted: saving the current state")
                trainer.save(0, f"{plan.output_name}-cancelled.safetensors")
    finally:
        reporter.close()
    return reporter.outputs
