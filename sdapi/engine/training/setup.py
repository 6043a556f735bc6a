"""Loading the base model for training and choosing the precision it trains in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from sdapi.engine.checkpoint_loader import load_pipeline
from sdapi.engine.training.plan import TrainPlan

log = logging.getLogger("sdapi")

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """How a job computes.

    Args:
        mixed: the mixed precision that really runs (``no`` on CPU whatever was asked).
        weight_dtype: the frozen UNet/text encoder weights' dtype.
        vae_dtype: the VAE's (fp32 with ``no_half_vae``).
        autocast: the autocast dtype, or ``None``.
    """

    mixed: str
    weight_dtype: torch.dtype
    vae_dtype: torch.dtype
    autocast: torch.dtype | None


def choose_precision(plan: TrainPlan, device: torch.device, warn) -> Precision:
    """kohya's mixed precision on CUDA: frozen weights in fp16/bf16, LoRA weights fp32 under autocast."""
    asked = plan.config["mixed_precision"]
    if device.type != "cuda":
        if asked != "no":
            warn(f"mixed_precision={asked} needs CUDA; training in fp32 on {device.type}")
        return Precision("no", torch.float32, torch.float32, None)
    if asked == "bf16" and not torch.cuda.is_bf16_supported():
        warn("bf16 is not supported on this GPU; using fp16")
        asked = "fp16"
    dtype = AUTOCAST_DTYPES.get(asked, torch.float32)
    vae_dtype = torch.float32 if plan.config["no_half_vae"] else dtype
    return Precision(asked, dtype, vae_dtype, dtype if asked != "no" else None)


def load_base(plan: TrainPlan, device: torch.device, precision: Precision, cache_dir: Path):
    """The frozen base pipeline on ``device`` (through the same loader as generation)."""
    pipe = load_pipeline(plan.checkpoint, device=device, dtype=precision.weight_dtype, cache_dir=cache_dir)
    pipe.vae.to(dtype=precision.vae_dtype)
    for module in (pipe.unet, *text_encoders(pipe), pipe.vae):
        module.requires_grad_(False)
    pipe.vae.eval()
    return pipe


def enable_memory_savers(pipe, plan: TrainPlan, device: torch.device, warn) -> None:
    """Attention kernel and gradient checkpointing as requested."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    if plan.config["xformers"] and device.type == "cuda":
        try:
            pipe.unet.enable_xformers_memory_efficient_attention()
        except Exception as exc:  # noqa: BLE001 - SDPA always works
            warn(f"xformers unavailable ({exc}); using SDPA")
            pipe.unet.set_attn_processor(AttnProcessor2_0())
    else:
        pipe.unet.set_attn_processor(AttnProcessor2_0())
    if plan.config["gradient_checkpointing"]:
        pipe.unet.enable_gradient_checkpointing()
        if plan.network.train_text_encoder:
            for encoder in text_encoders(pipe):
                encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def text_encoders(pipe) -> list:
    """The pipeline's text encoders: one, or SDXL's two."""
    return [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
