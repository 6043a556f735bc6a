"""Checking a ``POST /lora/train`` request before anything runs, and resolving it into a :class:`TrainPlan`.

Every check names the field it refuses: paths exist and stay inside the allowed folders, images decode, the
folders follow kohya's ``N_name`` layout (or ``repeats`` applies to a flat folder), sizes are multiples of the
bucket step, the base model is in the checkpoint catalog and is SD1/SD2 or SDXL, the output name is free.

SDXL follows kohya's ``sdxl_train_network.py``: ``bucket_reso_steps`` a multiple of 32, no ``v2``,
``cache_text_encoder_outputs`` only with ``network_train_unet_only`` and captions that never change,
``text_encoder_lr`` one rate or ``[CLIP-L, bigG]``; ``clip_skip`` is unused (noted in the job's log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sdapi.files import NotSafetensors, read_safetensors_header
from sdapi.dataset.paths import PathGuard
from sdapi.protocol.training import TrainRequest
from sdapi.engine.model_type import detect_model_type
from sdapi.engine.training.buckets import BucketSpec
from sdapi.engine.training.captions import CaptionRules
from sdapi.training.dataset import scan_dataset
from sdapi.training.errors import ConfigError, refused_as
from sdapi.engine.training.file_names import output_file_pattern
from sdapi.training.options import (
    check_optimizer,
    check_scheduler,
    default_optimizer,
    parse_kv_args,
    warmup_steps,
)
from sdapi.training.plan import MAX_TOTAL_STEPS, build_entries, schedule
from sdapi.engine.training.plan import Schedule
from sdapi.engine.training.plan import NetworkSpec, TrainPlan
from sdapi.training.sample_prompts import parse_prompts, sampler_name
from sdapi.engine.training.plan import SamplePrompt

OUTPUT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TOKEN_LENGTHS = (75, 150, 225)
# Sample prompts are a few lines; anything this long is not (a file is not read beyond it).
MAX_PROMPTS_FILE_CHARS = 1024 * 1024
TRAINABLE_TYPES = ("sd15", "sd2", "sd2-v", "sdxl")
SDXL = "sdxl"
SDXL_BUCKET_STEP = 32  # kohya's sdxl_train_network.py: verify_bucket_reso_steps(32)
# network_args keys sdapi applies; kohya's others (block dims, LoRA+, rank dropout) are refused, not ignored.
NETWORK_ARG_KEYS = ("conv_dim", "conv_alpha", "algo")


@dataclass(frozen=True)
class ValidationContext:
    """What validation needs from the server.

    Args:
        guard: confines request paths (the data dir and configured dataset roots).
        loras_dir: the default output folder (always allowed for output).
        find_checkpoint: the checkpoint catalog's lookup by title/filename/hash (returns an object with
            ``filename`` or ``None``).
        cuda: whether jobs train on a CUDA device (the default optimizer depends on it).
    """

    guard: PathGuard
    loras_dir: Path
    find_checkpoint: Callable[[str], Any]
    cuda: bool = False


def _resolve(ctx: ValidationContext, value: str, field: str, *, must_exist: bool = True,
             output: bool = False) -> Path:
    """A request path through the server's one :class:`PathGuard` (outputs also kept out of model folders)."""
    with refused_as(field):
        path = ctx.guard.resolve_output(value) if output else ctx.guard.resolve(value)
    if must_exist and not path.exists():
        raise ConfigError(field, f"{value} does not exist")
    return path


def _name(ctx: ValidationContext, value: str, field: str) -> str:
    """A name fragment the server joins to one of its folders, through the same guard."""
    with refused_as(field):
        return ctx.guard.check_name(value, field)


def check_names(req: TrainRequest, ctx: ValidationContext) -> None:
    """``output_name``, ``log_prefix`` and ``caption_extension`` stay plain parts of one file name."""
    _name(ctx, req.output_name, "output_name")
    if not OUTPUT_NAME.match(req.output_name):
        raise ConfigError("output_name", "use letters, digits, '.', '_' and '-' only")
    if req.log_prefix:
        _name(ctx, req.log_prefix, "log_prefix")
    _name(ctx, req.caption_extension, "caption_extension")


def parse_resolution(value: str | int, step: int) -> tuple[int, int]:
    """``"512,512"``, ``"512"`` or ``512`` → ``(width, height)``, each a positive multiple of ``step``."""
    parts = [p.strip() for p in str(value).split(",")]
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise ConfigError("resolution", f"{value!r} is not 'W,H' or 'W'") from None
    width, height = (sizes * 2)[:2] if len(sizes) == 1 else sizes[:2]
    if len(sizes) > 2 or width <= 0 or height <= 0 or width % step or height % step:
        raise ConfigError("resolution", f"{value!r}: each side must be a positive multiple of {step}")
    return width, height


def bucket_spec(req: TrainRequest) -> BucketSpec:
    """The bucket settings, checked against the resolution."""
    step = req.bucket_reso_steps
    if step <= 0 or step % 8:
        raise ConfigError("bucket_reso_steps", "must be a positive multiple of 8")
    resolution = parse_resolution(req.resolution, step)
    if req.enable_bucket:
        if req.min_bucket_reso > min(resolution):
            raise ConfigError("min_bucket_reso", f"{req.min_bucket_reso} is above the resolution's smaller side")
        if req.max_bucket_reso < max(resolution):
            raise ConfigError("max_bucket_reso", f"{req.max_bucket_reso} is below the resolution's larger side")
    return BucketSpec(resolution, req.enable_bucket, req.min_bucket_reso, req.max_bucket_reso, step,
                      req.bucket_no_upscale)


def checkpoint_of(req: TrainRequest, ctx: ValidationContext) -> tuple[Path, str | None]:
    """The base model file and its type (read from the safetensors header; ``None`` for pickles)."""
    name = req.pretrained_model_name_or_path
    info = ctx.find_checkpoint(name)
    path = Path(info.filename) if info is not None else _resolve(ctx, name, "pretrained_model_name_or_path",
                                                                 must_exist=False)
    if not path.is_file():
        raise ConfigError("pretrained_model_name_or_path", f"{name} is not a checkpoint in the models folder "
                                                           f"(DATA_DIR/models/Stable-diffusion or --ckpt-dir; "
                                                           f"/sdapi/v1/sd-models lists them)")
    if path.suffix.lower() != ".safetensors":
        return path, None
    try:
        header = read_safetensors_header(path)
    except NotSafetensors as exc:
        raise ConfigError("pretrained_model_name_or_path", f"{name} is not a safetensors file ({exc.reason})") \
            from exc
    except OSError as exc:
        raise ConfigError("pretrained_model_name_or_path", f"{name} cannot be read ({exc.strerror})") from exc
    header.pop("__metadata__", None)
    model_type = detect_model_type({k: v.get("shape") for k, v in header.items()}, path=path)
    if model_type not in TRAINABLE_TYPES:
        raise ConfigError("pretrained_model_name_or_path", f"{path.name} is a {model_type} model; "
                                                           f"only SD1.x/SD2.x and SDXL LoRA training is supported")
    if req.model_train_type == "sdxl-lora" and model_type not in (SDXL, None):
        raise ConfigError("model_train_type", f"sdxl-lora needs an SDXL checkpoint; {path.name} is a {model_type} "
                                              f"model (use sd-lora)")
    return path, model_type


def network_spec(req: TrainRequest) -> NetworkSpec:
    """The LoRA shape, with lora-scripts' ``conv_dim``/``conv_alpha`` folded into ``network_args``."""
    if req.network_module not in ("networks.lora", "lycoris.kohya"):
        raise ConfigError("network_module", f"{req.network_module} is not supported; use networks.lora")
    args = parse_kv_args(req.network_args + req.network_args_custom, "network_args")
    unknown = sorted(set(args) - set(NETWORK_ARG_KEYS))
    if unknown:
        raise ConfigError("network_args", f"not supported: {', '.join(unknown)} (supported: conv_dim, conv_alpha)")
    algo = req.lycoris_algo or args.get("algo") or ("locon" if req.network_module == "lycoris.kohya" else None)
    if algo not in (None, "locon", "lora"):
        raise ConfigError("lycoris_algo", f"{algo} is not supported; kohya LoRA/LoCon files only")
    conv_dim = req.conv_dim if req.conv_dim is not None else args.get("conv_dim")
    conv_alpha = req.conv_alpha if req.conv_alpha is not None else args.get("conv_alpha")
    if conv_dim is not None:
        conv_dim, conv_alpha = int(conv_dim), float(conv_alpha if conv_alpha is not None else 1)
    if req.network_train_unet_only and req.network_train_text_encoder_only:
        raise ConfigError("network_train_unet_only", "cannot be combined with network_train_text_encoder_only")
    alpha = float(req.network_alpha) or float(req.network_dim)  # kohya: alpha 0/None means alpha = dim
    shown = {} if conv_dim is None else {"conv_dim": str(conv_dim), "conv_alpha": str(conv_alpha)}
    return NetworkSpec(dim=req.network_dim, alpha=alpha, conv_dim=conv_dim, conv_alpha=conv_alpha,
                       dropout=req.network_dropout, train_unet=not req.network_train_text_encoder_only,
                       train_text_encoder=not req.network_train_unet_only, args=shown)


def sdxl_checks(req: TrainRequest, model_type: str | None) -> list[str]:
    """kohya's SDXL-only rules (``sdxl_train_network.py``), and notes for the job log.

    Args:
        req: the request.
        model_type: the base model's type (``None``: a pickle, unknown until loaded; nothing is refused).

    Raises:
        ConfigError: an SDXL-only option on another model, or an SDXL rule broken.
    """
    caching = req.cache_text_encoder_outputs or req.cache_text_encoder_outputs_to_disk
    if model_type != SDXL:
        if caching and model_type is not None:
            field = "cache_text_encoder_outputs" if req.cache_text_encoder_outputs else \
                "cache_text_encoder_outputs_to_disk"
            raise ConfigError(field, "SDXL only (kohya's sdxl_train_network.py); this base model is not SDXL")
        return []
    if req.v2:
        raise ConfigError("v2", "v2 cannot be enabled in SDXL training")
    if req.bucket_reso_steps % SDXL_BUCKET_STEP:
        raise ConfigError("bucket_reso_steps", f"must be a multiple of {SDXL_BUCKET_STEP} for SDXL")
    notes = []
    if "clip_skip" in req.model_fields_set and req.clip_skip is not None:
        notes.append("clip_skip is not used in SDXL training (as in kohya)")
    if caching:
        if not req.network_train_unet_only:
            raise ConfigError("cache_text_encoder_outputs", "needs network_train_unet_only: the text encoders "
                                                            "cannot train on cached outputs")
        changing = [name for name in ("shuffle_caption", "caption_dropout_rate", "caption_dropout_every_n_epochs",
                                      "caption_tag_dropout_rate") if getattr(req, name)]
        if changing:
            raise ConfigError("cache_text_encoder_outputs", f"captions must not change between steps; turn off "
                                                            f"{', '.join(changing)}")
        if req.cache_text_encoder_outputs_to_disk:
            notes.append("cache_text_encoder_outputs_to_disk: text encoder outputs are cached in memory")
    return notes


def text_encoder_rates(req: TrainRequest, sdxl: bool) -> tuple[float, float | None]:
    """(first text encoder's rate, SDXL bigG's when it differs) from kohya's one-or-more ``text_encoder_lr``."""
    rates = req.text_encoder_lr
    if rates is None or rates == []:
        return req.learning_rate, None
    if not isinstance(rates, list):
        return rates, None
    if len(rates) > (2 if sdxl else 1):
        raise ConfigError("text_encoder_lr", "one rate per text encoder: at most 2 for SDXL" if sdxl
                          else "this model has one text encoder: give one rate")
    return rates[0], rates[1] if len(rates) == 2 else None


def output_location(req: TrainRequest, ctx: ValidationContext) -> Path:
    """The output folder; a name already used there is refused unless ``overwrite``."""
    folder = ctx.loras_dir.resolve()
    if req.output_dir:
        folder = _resolve(ctx, req.output_dir, "output_dir", must_exist=False, output=True)
        if folder.exists() and not folder.is_dir():
            raise ConfigError("output_dir", f"{req.output_dir} is not a folder")
    if not req.overwrite and folder.is_dir():
        pattern = re.compile(rf"^{output_file_pattern(req.output_name)}$")
        taken = sorted(p.name for p in folder.iterdir() if pattern.match(p.name))
        if taken:
            raise ConfigError("output_name", f"{taken[0]} already exists in the output folder; pick another name "
                                             f"or set overwrite")
    return folder


def checked_schedule(req: TrainRequest, entries: list) -> tuple[Schedule, list[str]]:
    """The job's length by kohya's rule, bounded, and a note for the log when both limits were set."""
    plan_schedule = schedule(entries, req.train_batch_size, req.gradient_accumulation_steps, req.max_train_epochs,
                             req.max_train_steps)
    if plan_schedule.total_steps > MAX_TOTAL_STEPS:
        raise ConfigError("max_train_epochs", f"{plan_schedule.total_steps} steps in all; at most {MAX_TOTAL_STEPS}")
    notes = []
    if req.max_train_epochs and req.max_train_steps:
        notes.append(f"max_train_epochs ({req.max_train_epochs}) wins over max_train_steps ({req.max_train_steps}), "
                     f"as in kohya: {plan_schedule.total_steps} steps")
    return plan_schedule, notes


def sample_plan(req: TrainRequest, ctx: ValidationContext) -> tuple[list[SamplePrompt], int]:
    """Sample prompts (kohya text or file, or lora-scripts' positive/negative fields) and their period."""
    defaults = SamplePrompt(prompt="", negative_prompt=req.negative_prompts or "", width=req.sample_width,
                            height=req.sample_height, cfg_scale=req.sample_cfg, steps=req.sample_steps,
                            seed=req.sample_seed, sampler=sampler_name(req.sample_sampler))
    text = None
    if req.enable_preview is False:
        return [], 0
    if req.sample_prompts:
        candidate = req.sample_prompts.strip()
        is_file = "\n" not in candidate and candidate.lower().endswith(".txt")
        text = read_prompts_file(ctx, candidate) if is_file else candidate
    elif req.positive_prompts and req.enable_preview:
        text = req.positive_prompts.replace("\n", " ")
    if text and len(text) > MAX_PROMPTS_FILE_CHARS:
        raise ConfigError("sample_prompts" if req.sample_prompts else "positive_prompts",
                          f"longer than {MAX_PROMPTS_FILE_CHARS} characters")
    samples = parse_prompts(text, defaults) if text else []
    every = req.sample_every_n_epochs or (2 if samples else 0)
    return samples, every


def read_prompts_file(ctx: ValidationContext, value: str) -> str:
    """A kohya ``.txt`` prompts file, read through the guard and bounded in size."""
    path = _resolve(ctx, value, "sample_prompts")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(MAX_PROMPTS_FILE_CHARS + 1)
    except OSError as exc:
        raise ConfigError("sample_prompts", f"{value} cannot be read ({exc.strerror})") from exc
    return text


def refuse_unsupported(req: TrainRequest, ctx: ValidationContext) -> None:
    """Features sdapi's trainer does not have yet are refused rather than silently ignored."""
    if req.weighted_captions:
        raise ConfigError("weighted_captions", "weighted captions are not supported yet")
    if req.color_aug or req.random_crop:
        raise ConfigError("color_aug" if req.color_aug else "random_crop", "not supported (only flip_aug)")
    if req.vae:
        _resolve(ctx, req.vae, "vae", must_exist=False)  # even a refused path is checked like every other
        raise ConfigError("vae", "a separate VAE is not supported yet; the checkpoint's own VAE is used")
    check_scheduler(req.lr_scheduler)
    if req.max_token_length not in (None, *MAX_TOKEN_LENGTHS):
        raise ConfigError("max_token_length", "must be 75, 150 or 225")
    if req.min_timestep is not None and req.max_timestep is not None and req.min_timestep >= req.max_timestep:
        raise ConfigError("min_timestep", "must be below max_timestep")


def weights_file(req: TrainRequest, ctx: ValidationContext) -> Path | None:
    """``network_weights``: a LoRA file to start from, inside the allowed folders."""
    if not req.network_weights:
        return None
    path = _resolve(ctx, req.network_weights, "network_weights")
    if not path.is_file():
        raise ConfigError("network_weights", f"{req.network_weights} is not a file")
    return path


def effective_config(req: TrainRequest) -> dict[str, Any]:
    """The request as it will run: lora-scripts' aliases folded into kohya's names."""
    config = req.model_dump()
    if req.lr_restart_cycles is not None:
        config["lr_scheduler_num_cycles"] = req.lr_restart_cycles
    config["unet_lr"] = req.unet_lr if req.unet_lr is not None else req.learning_rate
    config["class_tokens"] = req.class_tokens or req.output_name
    return config


def chosen_optimizer(req: TrainRequest, ctx: ValidationContext) -> tuple[str, str | None]:
    """The optimizer's canonical name, and a note for the job log when it is the default (``None`` otherwise)."""
    if req.optimizer_type:
        return check_optimizer(req.optimizer_type), None
    name, note = default_optimizer(ctx.cuda)
    return check_optimizer(name), note


def optimizer_args(req: TrainRequest) -> dict[str, Any]:
    """``optimizer_args`` (+ lora-scripts' custom list and Prodigy fields) as keyword arguments."""
    args = parse_kv_args(req.optimizer_args + req.optimizer_args_custom, "optimizer_args")
    if req.prodigy_d0 is not None:
        args["d0"] = req.prodigy_d0
    if req.prodigy_d_coef is not None:
        args["d_coef"] = req.prodigy_d_coef
    return args


def build_plan(req: TrainRequest, ctx: ValidationContext, job_dir: Path) -> TrainPlan:
    """Check a request and resolve it.

    Args:
        req: the parsed request.
        ctx: the server's folders and catalog.
        job_dir: the job's own folder (default TensorBoard root).

    Returns:
        The plan.

    Raises:
        ConfigError: naming the first field that cannot work.
    """
    check_names(req, ctx)
    refuse_unsupported(req, ctx)
    optimizer, optimizer_note = chosen_optimizer(req, ctx)
    config = {**effective_config(req), "optimizer_type": optimizer}
    checkpoint, model_type = checkpoint_of(req, ctx)
    sdxl_notes = sdxl_checks(req, model_type)
    text_lr, text_2_lr = text_encoder_rates(req, model_type == SDXL)
    config["text_encoder_lr"] = text_lr
    buckets = bucket_spec(req)
    network = network_spec(req)
    train_root = _resolve(ctx, req.train_data_dir, "train_data_dir")
    subsets = scan_dataset(train_root, extension=req.caption_extension, guard=ctx.guard, field_name="train_data_dir",
                           repeats=req.repeats, class_tokens=config["class_tokens"])
    reg_subsets = []
    if req.reg_data_dir:
        reg_root = _resolve(ctx, req.reg_data_dir, "reg_data_dir")
        reg_subsets = scan_dataset(reg_root, extension=req.caption_extension, guard=ctx.guard,
                                   field_name="reg_data_dir", repeats=1, class_tokens=config["class_tokens"],
                                   is_reg=True)
    entries = build_entries(subsets, reg_subsets, buckets)
    plan_schedule, notes = checked_schedule(req, entries)
    notes = [optimizer_note, *notes] if optimizer_note else notes
    notes += sdxl_notes
    samples, every = sample_plan(req, ctx)
    logging_dir = None
    if req.log_with:
        logging_dir = _resolve(ctx, req.logging_dir, "logging_dir", must_exist=False, output=True) \
            if req.logging_dir else job_dir / "logs"
    return TrainPlan(
        config=config, checkpoint=checkpoint, model_type=model_type, subsets=subsets, reg_subsets=reg_subsets,
        entries=entries, schedule=plan_schedule, buckets=buckets,
        captions=CaptionRules(req.caption_separator, req.shuffle_caption, req.keep_tokens,
                              req.keep_tokens_separator, req.caption_prefix, req.caption_suffix,
                              req.caption_dropout_rate, req.caption_dropout_every_n_epochs,
                              req.caption_tag_dropout_rate),
        network=network, output_dir=output_location(req, ctx), output_name=req.output_name,
        unet_lr=config["unet_lr"], text_encoder_lr=text_lr, text_encoder_2_lr=text_2_lr,
        warmup_steps=warmup_steps(req.lr_warmup_steps, plan_schedule.total_steps),
        optimizer=optimizer, optimizer_args=optimizer_args(req),
        samples=samples, sample_every_n_epochs=every,
        network_weights=weights_file(req, ctx),
        logging_dir=logging_dir, notes=notes,
    )
