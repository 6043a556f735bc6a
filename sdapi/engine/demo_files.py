"""The demo files a data dir gets (``sdapi demo-models DIR`` and the tests): two checkpoints and a LoRA, and on
request the tiny SDXL checkpoint with its SDXL LoRA and the tiny SDXL refiner, a textual-inversion embedding and VAE
file for the SD 1.x ones, and a ControlNet for them."""

from __future__ import annotations

from pathlib import Path

from sdapi.engine.controlnet_file import write_demo_controlnet
from sdapi.engine.demo_embedding import write_demo_embedding
from sdapi.engine.demo_lora import write_demo_lora
from sdapi.engine.demo_lora_sdxl import write_demo_sdxl_lora
from sdapi.engine.demo_models import DEMO_MODELS, MODELS_SUBDIR, build_tiny_sd15_pipeline, write_demo_checkpoint
from sdapi.engine.demo_sdxl import write_demo_sdxl
from sdapi.engine.demo_vae import write_demo_vae
from sdapi.engine.demo_sdxl_refiner import write_demo_sdxl_refiner

DEMO_CONTROLNET = Path("models") / "ControlNet" / "demo-control.safetensors"


def write_demo_models(data_dir: Path, sdxl: bool = False, extras: bool = False,
                      controlnet: bool = False) -> list[Path]:
    """Make sure the demo checkpoints exist under ``<data_dir>/models/Stable-diffusion``.

    Writes ``demo-sd15.safetensors`` (seed 0) and ``demo-sd15-b.safetensors``
    (seed 1), and the kohya-format ``models/Lora/demo-lora.safetensors``
    (:mod:`sdapi.engine.demo_lora`); files that already exist are left alone.

    Args:
        data_dir: the server's data directory.
        sdxl: also write the tiny SDXL checkpoint ``demo-sdxl.safetensors`` (:mod:`sdapi.engine.demo_sdxl`), its
            kohya-format SDXL LoRA ``models/Lora/demo-sdxl-lora.safetensors`` (:mod:`sdapi.engine.demo_lora_sdxl`)
            and the tiny SDXL refiner ``demo-sdxl-refiner.safetensors`` (:mod:`sdapi.engine.demo_sdxl_refiner`).
        extras: also write ``embeddings/demo-embedding.safetensors`` and ``models/VAE/demo-vae.safetensors``
            (:mod:`sdapi.engine.demo_embedding`, :mod:`sdapi.engine.demo_vae`).
        controlnet: also write ``models/ControlNet/demo-control.safetensors``, a random ControlNet for the SD 1.x
            demo checkpoints' UNet in lllyasviel's original layout (:func:`write_demo_controlnet_file`).

    Returns:
        The paths of both demo checkpoints and of the demo LoRA (existing or newly written), then the SDXL
        checkpoint, the SDXL LoRA and the SDXL refiner, then the embedding and the VAE, then the ControlNet.
    """
    models_dir = Path(data_dir) / MODELS_SUBDIR
    paths = []
    for name, seed in DEMO_MODELS:
        path = models_dir / name
        if not path.exists():
            write_demo_checkpoint(path, seed)
        paths.append(path)
    paths.append(write_demo_lora(data_dir))
    if sdxl:
        paths += [write_demo_sdxl(data_dir), write_demo_sdxl_lora(data_dir), write_demo_sdxl_refiner(data_dir)]
    if extras:
        paths += [write_demo_embedding(data_dir), write_demo_vae(data_dir)]
    if controlnet:
        paths.append(write_demo_controlnet_file(data_dir))
    return paths


def write_demo_controlnet_file(data_dir: Path) -> Path:
    """Make sure ``<data_dir>/models/ControlNet/demo-control.safetensors`` exists (left alone if it does)."""
    path = Path(data_dir) / DEMO_CONTROLNET
    if not path.exists():
        write_demo_controlnet(path, build_tiny_sd15_pipeline(0).unet.config)
    return path
