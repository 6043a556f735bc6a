"""Writing a trained LoRA in kohya's format: its tensors, ``ss_*`` metadata and ``sshs_*`` hashes.

Every metadata value is a string (dicts as JSON), as kohya writes them and A1111 reads them. Files are written
under a hidden temporary name and renamed into place, so a half-written ``.safetensors`` is never visible.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from sdapi.engine.demo_lora import write_kohya_lora
from sdapi.files import read_safetensors_header, SHORTHASH_LENGTH
from sdapi.engine.training.plan import dataset_dirs, tag_frequency
from sdapi.engine.training.plan import bucket_counts
from sdapi.engine.training.plan import TrainPlan

SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}
# kohya's model_util / sdxl_model_util version strings and sai_model_spec architectures.
BASE_MODEL_VERSIONS = {"sd15": "sd_v1", "sd2": "sd_v2", "sd2-v": "sd_v2_v", "sdxl": "sdxl_base_v1-0", None: "sd_v1"}
ARCHITECTURES = {"sd15": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-512/lora",
                 "sd2-v": "stable-diffusion-v2-768-v/lora", "sdxl": "stable-diffusion-xl-v1-base/lora",
                 None: "stable-diffusion-v1/lora"}
# sai_model_spec: kohya's SDXL LoRAs name Stability AI's sgm code as their implementation, the others diffusers.
IMPLEMENTATIONS = {"sdxl": "https://github.com/Stability-AI/generative-models"}
COMMIT_TAG = "sdapi/0.1.0"


@dataclass
class RunFacts:
    """What only the running job knows, recorded in every file it saves.

    Args:
        session_id: kohya's random ``ss_session_id``.
        started_at: training start (epoch seconds).
        optimizer: ``ss_optimizer`` text of the optimizer that really ran.
        mixed_precision: the precision that really ran (``no`` on CPU).
        model_type: ``sd15``/``sd2``/``sd2-v``/``sdxl``.
        model_hash: the base checkpoint's full sha256, when known.
        legacy_model_hash: the base checkpoint's A1111 legacy 8-hex hash (sha256 of 64 KiB at 1 MiB), when known.
    """

    session_id: int
    started_at: float
    optimizer: str
    mixed_precision: str
    model_type: str | None
    model_hash: str | None = None
    legacy_model_hash: str | None = None


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def lora_metadata(plan: TrainPlan, facts: RunFacts, epoch: int, step: int) -> dict[str, str]:
    """kohya's metadata for a file saved at ``epoch``/``step`` (every value a string)."""
    c, network = plan.config, plan.network
    resolution = plan.buckets.resolution
    values: dict[str, Any] = {
        "ss_session_id": facts.session_id, "ss_training_started_at": facts.started_at,
        "ss_training_finished_at": time.time(), "ss_output_name": plan.output_name,
        "ss_learning_rate": c["learning_rate"], "ss_unet_lr": plan.unet_lr,
        "ss_text_encoder_lr": plan.text_encoder_lr if plan.text_encoder_2_lr is None
        else [plan.text_encoder_lr, plan.text_encoder_2_lr], "ss_num_train_images": plan.num_train_images,
        "ss_num_reg_images": plan.num_reg_images, "ss_num_batches_per_epoch": plan.schedule.steps_per_epoch,
        "ss_num_epochs": plan.schedule.epochs, "ss_epoch": epoch, "ss_steps": step,
        "ss_max_train_steps": plan.schedule.total_steps, "ss_gradient_checkpointing": c["gradient_checkpointing"],
        "ss_gradient_accumulation_steps": c["gradient_accumulation_steps"], "ss_lr_warmup_steps": plan.warmup_steps,
        "ss_lr_scheduler": c["lr_scheduler"], "ss_network_module": "networks.lora", "ss_network_dim": network.dim,
        "ss_network_alpha": network.alpha, "ss_network_dropout": network.dropout,
        "ss_mixed_precision": facts.mixed_precision, "ss_full_fp16": c["full_fp16"],
        "ss_v2": facts.model_type in ("sd2", "sd2-v") or c["v2"],
        "ss_base_model_version": BASE_MODEL_VERSIONS[facts.model_type], "ss_clip_skip": c["clip_skip"],
        "ss_max_token_length": c["max_token_length"], "ss_cache_latents": c["cache_latents"], "ss_seed": c["seed"],
        "ss_lowram": c["lowram"], "ss_noise_offset": c["noise_offset"],
        "ss_multires_noise_iterations": c["multires_noise_iterations"],
        "ss_multires_noise_discount": c["multires_noise_discount"], "ss_adaptive_noise_scale": None,
        "ss_zero_terminal_snr": False, "ss_training_comment": c["training_comment"],
        "ss_sd_scripts_commit_hash": COMMIT_TAG, "ss_optimizer": facts.optimizer,
        "ss_max_grad_norm": c["max_grad_norm"], "ss_caption_dropout_rate": c["caption_dropout_rate"],
        "ss_caption_dropout_every_n_epochs": c["caption_dropout_every_n_epochs"],
        "ss_caption_tag_dropout_rate": c["caption_tag_dropout_rate"], "ss_face_crop_aug_range": None,
        "ss_prior_loss_weight": c["prior_loss_weight"], "ss_min_snr_gamma": c["min_snr_gamma"],
        "ss_scale_weight_norms": None, "ss_ip_noise_gamma": None, "ss_debiased_estimation": False,
        "ss_loss_type": c["loss_type"], "ss_batch_size_per_device": c["train_batch_size"],
        "ss_total_batch_size": c["train_batch_size"] * c["gradient_accumulation_steps"],
        "ss_resolution": f"({resolution[0]}, {resolution[1]})", "ss_color_aug": False, "ss_flip_aug": c["flip_aug"],
        "ss_random_crop": False, "ss_shuffle_caption": c["shuffle_caption"], "ss_enable_bucket": c["enable_bucket"],
        "ss_bucket_no_upscale": c["bucket_no_upscale"], "ss_min_bucket_reso": c["min_bucket_reso"],
        "ss_max_bucket_reso": c["max_bucket_reso"], "ss_keep_tokens": c["keep_tokens"],
        "ss_dataset_dirs": dataset_dirs(plan.subsets), "ss_reg_dataset_dirs": dataset_dirs(plan.reg_subsets),
        "ss_tag_frequency": tag_frequency(plan.subsets, c["caption_separator"]),
        "ss_bucket_info": {"buckets": {str(i): {"resolution": list(size), "count": count}
                                       for i, (size, count) in enumerate(bucket_counts(plan.entries).items())}},
        "ss_sd_model_name": plan.checkpoint.name,
    }
    if network.args:
        values["ss_network_args"] = network.args
    if facts.legacy_model_hash:
        values["ss_sd_model_hash"] = facts.legacy_model_hash
    if facts.model_hash:
        values["ss_new_sd_model_hash"] = facts.model_hash
    values.update(modelspec(plan, facts))
    return {key: _text(value) for key, value in values.items()}


def modelspec(plan: TrainPlan, facts: RunFacts) -> dict[str, str]:
    """The SAI model spec 1.0.1 core keys kohya adds (``modelspec.*``)."""
    c = plan.config
    spec = {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": ARCHITECTURES[facts.model_type],
        "modelspec.implementation": IMPLEMENTATIONS.get(facts.model_type, "diffusers"),
        "modelspec.title": c.get("metadata_title") or plan.output_name,
        "modelspec.resolution": f"{plan.buckets.resolution[0]}x{plan.buckets.resolution[1]}",
        "modelspec.date": datetime.fromtimestamp(facts.started_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "modelspec.prediction_type": "v" if plan.v_prediction else "epsilon",
    }
    if c.get("clip_skip"):
        spec["modelspec.encoder_layer"] = str(c["clip_skip"])
    for key in ("author", "description", "trigger_phrase"):
        if c.get(f"metadata_{key}"):
            spec[f"modelspec.{key}"] = c[f"metadata_{key}"]
    return spec


def save_lora(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path, epoch: int,
              step: int) -> dict[str, Any]:
    """Write one file (atomically) and describe it for the job record.

    Returns:
        ``{epoch, step, path, name, sha256_addnet, shorthash, legacy_hash, size}``.
    """
    write_kohya_lora(path, tensors, metadata)
    written = read_safetensors_header(path)["__metadata__"]
    return {"epoch": epoch, "step": step, "path": str(path), "name": path.stem,
            "sha256_addnet": written["sshs_model_hash"], "shorthash": written["sshs_model_hash"][:SHORTHASH_LENGTH],
            "legacy_hash": written["sshs_legacy_hash"], "size": path.stat().st_size}
