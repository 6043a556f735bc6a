"""A training plan: the checked, resolved form of a training request, everything the trainer needs and nothing it
must look up (the engine's request type for training; ``sdapi.training.validate`` builds it).

Also the arithmetic the trainer shares with planning: images × repeats sorted into buckets and cut into batches
(kohya's: ``steps per epoch = Σ over buckets ceil(images × repeats in the bucket / batch size)``), and the kohya
metadata derived from the scanned folders.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdapi.engine.training.buckets import BucketSpec, Size
from sdapi.engine.training.captions import CaptionRules


@dataclass(frozen=True)
class ImageItem:
    """One training image.

    Args:
        path: the image file.
        caption: its caption (before shuffling/dropout), never empty.
        width, height: pixel size.
    """

    path: Path
    caption: str
    width: int
    height: int


@dataclass
class Subset:
    """One folder of images sharing repeats and class tokens (kohya's subset).

    Args:
        name: the folder name as kohya records it (``10_aki``).
        path: the folder.
        repeats: how often each image appears per epoch.
        class_tokens: caption of images without a caption file.
        images: its images, sorted by file name.
        is_reg: a regularisation subset (``reg_data_dir``).
    """

    name: str
    path: Path
    repeats: int
    class_tokens: str
    images: list[ImageItem] = field(default_factory=list)
    is_reg: bool = False


@dataclass(frozen=True)
class SamplePrompt:
    """One sample image drawn after an epoch.

    Args:
        prompt, negative_prompt: the texts.
        width, height: pixels (multiples of 8).
        cfg_scale, steps, seed: as in txt2img.
        sampler: an A1111 sampler name.
    """

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    cfg_scale: float = 7.0
    steps: int = 24
    seed: int = 2333
    sampler: str = "Euler a"


@dataclass(frozen=True)
class Entry:
    """One image as the trainer uses it.

    Args:
        item: the image.
        repeats: how many times it appears per epoch.
        bucket: its training size.
        is_reg: a regularisation image (its loss is weighted by ``prior_loss_weight``).
    """

    item: ImageItem
    repeats: int
    bucket: Size
    is_reg: bool = False


@dataclass(frozen=True)
class Schedule:
    """How long a job trains.

    Args:
        steps_per_epoch: batches per epoch.
        updates_per_epoch: optimizer steps per epoch (``gradient_accumulation_steps`` batches each).
        epochs: epochs to run.
        total_steps: optimizer steps in all (what lr schedulers and progress count).
    """

    steps_per_epoch: int
    updates_per_epoch: int
    epochs: int
    total_steps: int


def bucket_counts(entries: list[Entry]) -> dict[Size, int]:
    """Images × repeats per bucket."""
    counts: dict[Size, int] = defaultdict(int)
    for entry in entries:
        counts[entry.bucket] += entry.repeats
    return dict(sorted(counts.items()))


def epoch_batches(entries: list[Entry], batch_size: int, rng: random.Random) -> list[list[Entry]]:
    """One epoch's batches: every bucket's repeated entries shuffled and cut, then the batches shuffled."""
    per_bucket: dict[Size, list[Entry]] = defaultdict(list)
    for entry in entries:
        per_bucket[entry.bucket].extend([entry] * entry.repeats)
    batches = []
    for bucket in sorted(per_bucket):
        items = per_bucket[bucket]
        rng.shuffle(items)
        batches += [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    rng.shuffle(batches)
    return batches


def tag_frequency(subsets: list[Subset], separator: str = ",") -> dict[str, dict[str, int]]:
    """kohya's ``ss_tag_frequency``: per folder, how many captions hold each (stripped, lower-cased) tag."""
    frequency = {}
    for subset in subsets:
        counts: Counter[str] = Counter()
        for item in subset.images:
            counts.update(tag.strip().lower() for tag in item.caption.split(separator) if tag.strip())
        frequency[subset.name] = dict(counts)
    return frequency


def dataset_dirs(subsets: list[Subset]) -> dict[str, dict[str, int]]:
    """kohya's ``ss_dataset_dirs``: ``{folder: {"n_repeats": r, "img_count": n}}``."""
    return {s.name: {"n_repeats": s.repeats, "img_count": len(s.images)} for s in subsets}




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
        model_type: ``sd15``, ``sd2``, ``sd2-v`` or ``sdxl`` (``None`` for a ``.ckpt``, known once loaded).
        subsets, reg_subsets: the scanned folders.
        entries: every image with repeats and bucket.
        schedule: epochs and steps.
        buckets: the bucket settings.
        captions: the caption rules.
        network: the LoRA to train.
        output_dir, output_name: where files go.
        unet_lr, text_encoder_lr: learning rates (``text_encoder_lr``: the first text encoder's).
        text_encoder_2_lr: SDXL's second text encoder's rate, when it differs (``None``: ``text_encoder_lr``).
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
    text_encoder_2_lr: float | None = None

    @property
    def sdxl(self) -> bool:
        """Whether the base model is SDXL."""
        return self.model_type == "sdxl"

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
