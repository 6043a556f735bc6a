"""The checked, resolved form of a training request: everything the trainer needs, nothing it must look up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdapi.training.buckets import BucketSpec
from sdapi.training.captions import CaptionRules
from sdapi.training.dataset import Subset, dataset_dirs
from sdapi.training.plan import Entry, Schedule, bucket_counts
from sdapi.training.sample_prompts import SamplePrompt


@dataclass(frozen=True)
class NetworkSpec:
    """The LoRA to train.

    Args:
        dim, alpha: rank and alpha of Linear / 1x1 targets.
        conv_dim, conv_alpha: LoCon rank and alpha of 3x3 convs (``None``: plain LoRA).
        dropout: ``network_dropout`` (on the down projection's output, as kohya).
        train_unet, train_text_encoder: which parts get LoRA layers.
        args: ``ss_network_args`` (the ``k=v`` network args as strings).
    """

    dim: int
    alpha: float
    conv_dim: int | None = None
    conv_alpha: float | None = None
    dropout: float | None = None
    train_unet: bool = True
    train_text_encoder: bool = True
    args: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainPlan:
    """A validated job.

    Args:
        config: the effective request (defaults filled, lora-scripts UI keys folded), as a dict.
        checkpoint: the base model file.
        model_type: ``sd15``, ``sd2`` or ``sd2-v`` (``None`` for a ``.ckpt``, known once loaded).
        subsets, reg_subsets: the scanned folders.
        entries: every image with repeats and bucket.
        schedule: epochs and steps.
        buckets: the bucket settings.
        captions: the caption rules.
        network: the LoRA to train.
        output_dir, output_name: where files go.
        unet_lr, text_encoder_lr: learning rates.
        warmup_steps: lr warmup in optimizer steps.
        optimizer, optimizer_args: canonical optimizer name and its keyword arguments.
        samples: sample prompts; ``sample_every_n_epochs`` how often (0: never).
        network_weights: a LoRA to start from.
        logging_dir: TensorBoard root (``None``: no event files).
        notes: what validation decided for the client (a default chosen, one limit winning over another), for
            the job's log.
    """

    config: dict[str, Any]
    checkpoint: Path
    model_type: str | None
    subsets: list[Subset]
    reg_subsets: list[Subset]
    entries: list[Entry]
    schedule: Schedule
    buckets: BucketSpec
    captions: CaptionRules
    network: NetworkSpec
    output_dir: Path
    output_name: str
    unet_lr: float
    text_encoder_lr: float
    warmup_steps: int
    optimizer: str
    optimizer_args: dict[str, Any]
    samples: list[SamplePrompt] = field(default_factory=list)
    sample_every_n_epochs: int = 0
    network_weights: Path | None = None
    logging_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def v_prediction(self) -> bool:
        """Whether the model predicts v (SD2 768-v or ``v_parameterization``)."""
        return self.model_type == "sd2-v" or bool(self.config.get("v_parameterization"))

    @property
    def num_train_images(self) -> int:
        """kohya's ``ss_num_train_images``: training images × repeats."""
        return sum(e.repeats for e in self.entries if not e.is_reg)

    @property
    def num_reg_images(self) -> int:
        """Regularisation images × repeats after balancing."""
        return sum(e.repeats for e in self.entries if e.is_reg)

    def dataset_summary(self) -> dict[str, Any]:
        """What ``dry_run`` answers and every job view shows: folders, buckets and the step arithmetic."""
        return {
            "images": sum(len(s.images) for s in self.subsets),
            "reg_images": sum(len(s.images) for s in self.reg_subsets),
            "num_train_images": self.num_train_images,
            "num_reg_images": self.num_reg_images,
            "dirs": dataset_dirs(self.subsets),
            "reg_dirs": dataset_dirs(self.reg_subsets),
            "buckets": [{"resolution": list(size), "count": count}
                        for size, count in bucket_counts(self.entries).items()],
            "batch_size": self.config["train_batch_size"],
            "steps_per_epoch": self.schedule.steps_per_epoch,
            "updates_per_epoch": self.schedule.updates_per_epoch,
            "epochs": self.schedule.epochs,
            "total_steps": self.schedule.total_steps,
        }
