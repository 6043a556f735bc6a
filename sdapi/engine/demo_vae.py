"""A tiny VAE file for the demo checkpoints: the SD 1.x demo checkpoint's own VAE with every weight nudged by
seeded noise, in the original ldm layout VAE downloads have (``models/VAE/demo-vae.safetensors``)."""

from __future__ import annotations

from pathlib import Path

import torch

from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.ldm_layout import VAE_PREFIX, vae_to_ldm, write_safetensors

DEMO_VAE_NAME = "demo-vae.safetensors"
VAE_SUBDIR = Path("models") / "VAE"
# Relative size of the nudge: enough to change every decoded pixel, not enough to make noise of the images.
NUDGE = 0.05


def nudged_vae_state_dict(seed: int = 1, layout: str = "ldm", model_seed: int = 0) -> dict[str, torch.Tensor]:
    """The demo checkpoint's VAE weights (``model_seed``), each times ``1 + NUDGE * noise`` from ``seed``.

    Args:
        layout: ``ldm`` (``encoder.down.0.block.0…``, no prefix) or ``diffusers`` (``AutoencoderKL`` keys).
    """
    vae = build_tiny_sd15_pipeline(model_seed).vae
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weights = {k: v * (1.0 + NUDGE * torch.randn_like(v)) for k, v in vae.state_dict().items()}
    if layout == "diffusers":
        return weights
    return {k[len(VAE_PREFIX):]: v for k, v in vae_to_ldm(weights, vae.config).items()}


def write_demo_vae(data_dir: Path, name: str = DEMO_VAE_NAME, seed: int = 1) -> Path:
    """Make sure ``<data_dir>/models/VAE/<name>`` exists and return it; an existing file is left alone."""
    path = Path(data_dir) / VAE_SUBDIR / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_safetensors(nudged_vae_state_dict(seed), path)
    return path
