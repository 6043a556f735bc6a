"""Which precision a checkpoint's VAE runs in.

SDXL's original VAE overflows in float16 (black or NaN images), which is why its config says ``force_upcast`` and
why A1111 runs it in float32 on half-precision GPUs (``--no-half-vae``, or its automatic retry in float32). We do
the same up front: a VAE whose config asks for it stays float32 while the rest of the model is half precision.
The SD 1.x/2.x VAEs work in float16 and keep the model's dtype, as A1111 v1.2.1 keeps them.
"""

from __future__ import annotations

import torch


def upcast_vae_if_needed(pipe) -> torch.dtype:
    """Move an SDXL pipeline's VAE to float32 when the model runs in half precision and the VAE asks for it.

    Args:
        pipe: a loaded diffusers pipeline (modified in place).

    Returns:
        The VAE's dtype afterwards.
    """
    vae = pipe.vae
    half = vae.dtype in (torch.float16, torch.bfloat16)
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    if half and sdxl and vae.config.get("force_upcast", False):
        vae.to(torch.float32)
    return vae.dtype
