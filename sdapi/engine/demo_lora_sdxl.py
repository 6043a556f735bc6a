"""A kohya-format SDXL demo LoRA for the tiny SDXL checkpoint, built by code (seeded random weights, not trained).

It holds exactly what kohya's ``sdxl_train_network.py`` writes for a full LoCon (``networks.lora`` with
``conv_dim``): every Linear/Conv2d of the UNet's ``Transformer2DModel``, ``ResnetBlock2D``, ``Downsample2D`` and
``Upsample2D`` blocks, named in the ldm/SGM layout (``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``,
``lora_unet_input_blocks_1_0_in_layers_2``), and the attention and MLP layers of both text encoders
(``lora_te1_…`` CLIP-L, ``lora_te2_…`` bigG), with kohya's metadata (``ss_base_model_version`` =
``sdxl_base_v1-0``) and ``sshs_*`` hashes. The names come from the trainer's own target finder, so a trained SDXL
file and this one are named alike.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sdapi.engine.demo_lora import LORA_SUBDIR, RANK, kohya_metadata, random_lora_tensors, write_kohya_lora
from sdapi.engine.demo_sdxl import DEMO_SDXL_NAME, build_tiny_sdxl_pipeline
from sdapi.engine.training.network import (
    SDXL_TEXT_PREFIXES,
    TEXT_BLOCKS,
    UNET_BLOCKS,
    UNET_CONV_BLOCKS,
    UNET_PREFIX,
    find_targets,
    sdxl_unet_paths,
)

DEMO_SDXL_LORA_NAME = "demo-sdxl-lora"
SDXL_BASE_MODEL_VERSION = "sdxl_base_v1-0"  # kohya's sdxl_model_util.MODEL_VERSION_SDXL_BASE_V1_0
# Smaller than the SD 1.5 demo's: every UNet layer is targeted here, and the image must change, not saturate.
SDXL_UP_STD = 0.15


def sdxl_kohya_layers(pipe) -> dict[str, torch.nn.Module]:
    """kohya's full SDXL LoCon target set of an SDXL pipeline, by kohya layer name."""
    layers = {name: module for name, (module, _) in find_targets(
        pipe.unet, UNET_PREFIX, UNET_BLOCKS + UNET_CONV_BLOCKS, RANK, rename=sdxl_unet_paths(pipe.unet)).items()}
    for prefix, encoder in zip(SDXL_TEXT_PREFIXES, (pipe.text_encoder, pipe.text_encoder_2)):
        layers.update({name: module for name, (module, _) in
                       find_targets(encoder, prefix, TEXT_BLOCKS, None, text_model_prefix=True).items()})
    return layers


def sdxl_kohya_metadata(model_file: str, output_name: str) -> dict[str, str]:
    """The demo's ``ss_*`` metadata: kohya's, with the SDXL base model version."""
    return {**kohya_metadata(model_file, output_name), "ss_base_model_version": SDXL_BASE_MODEL_VERSION}


def write_demo_sdxl_lora(data_dir: Path, seed: int = 0, name: str = DEMO_SDXL_LORA_NAME) -> Path:
    """Write ``<data_dir>/models/Lora/<name>.safetensors`` for the tiny SDXL checkpoint (left alone if it exists).

    Args:
        data_dir: the server's data directory.
        seed: weight seed.
        name: file stem and ``ss_output_name``.

    Returns:
        The LoRA's path.
    """
    path = Path(data_dir) / LORA_SUBDIR / f"{name}.safetensors"
    if not path.exists():
        tensors = random_lora_tensors(sdxl_kohya_layers(build_tiny_sdxl_pipeline(0)), seed, SDXL_UP_STD)
        write_kohya_lora(path, tensors, sdxl_kohya_metadata(DEMO_SDXL_NAME, name))
    return path
