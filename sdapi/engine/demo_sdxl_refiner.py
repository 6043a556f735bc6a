"""A tiny random-weight SDXL refiner checkpoint, built by code, in the original (Stability sgm) single-file layout.

The topology is the refiner's (``sd_xl_refiner.yaml``): four levels with attention in the middle two, one text
encoder, OpenCLIP bigG, stored as the conditioner's first embedder (``conditioner.embedders.0.model.``, with its
``text_projection``), a cross-attention context as wide as bigG, and the ``text_time`` added embedding of the pooled
text and five numbers (original size, crop, aesthetic score); only much narrower. Its tokenizer is the real CLIP
vocabulary padding with ``!``, as the refiner's is.

The file loads through :func:`sdapi.engine.checkpoint_loader.load_pipeline` as a real refiner does: its keys say
refiner (:mod:`sdapi.engine.model_type`), and its metadata carries the tiny sizes in place of the shipped real configs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sdapi.engine.checkpoint_loader import (
    CONFIGS_DIR,
    DIFFUSERS_CONFIG_FORMAT,
    DIFFUSERS_CONFIG_KEY,
    NOTE_KEY,
    SDXL_REFINER_PIPELINE,
)
from sdapi.engine.conditioning_sdxl import REFINER_TIME_IDS
from sdapi.engine.demo_models import (
    DEMO_NOTE,
    MODELS_SUBDIR,
    build_tiny_vae,
    build_tokenizer,
    make_weights_interesting,
    plain_config,
    read_json,
    tiny_clip_text_config,
)
from sdapi.engine.demo_sdxl import BIGG_WIDTH, SDXL_VAE_SCALE, TIME_EMBED_WIDTH, text_encoder_config
from sdapi.engine.ldm_layout import save_single_file

DEMO_SDXL_REFINER_NAME = "demo-sdxl-refiner.safetensors"
# Its own seed, so it is not the base demo's weights.
DEMO_SDXL_REFINER_SEED = 3

_REFINER_CONFIGS = CONFIGS_DIR / "sdxl-refiner"


def _build_unet() -> Any:
    """The tiny refiner-topology UNet: four levels, attention in the middle two, a bigG-wide context, ``text_time``
    added embedding of the pooled text and five numbers."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(16, 32, 32, 32),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=2,
        attention_head_dim=(2, 4, 4, 4),
        use_linear_projection=True,
        cross_attention_dim=BIGG_WIDTH,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_WIDTH,
        projection_class_embeddings_input_dim=REFINER_TIME_IDS * TIME_EMBED_WIDTH + BIGG_WIDTH,
    )


def build_tiny_sdxl_refiner_pipeline(seed: int = DEMO_SDXL_REFINER_SEED) -> Any:
    """Build a tiny refiner-topology pipeline with random weights (from a forked RNG seeded with ``seed``).

    Returns:
        A ``diffusers.StableDiffusionXLImg2ImgPipeline`` without a first text encoder, with
        ``requires_aesthetics_score``, on CPU, float32, progress bar off.
    """
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer_2 = build_tokenizer(_REFINER_CONFIGS / "tokenizer_2")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = _build_unet()
        vae = build_tiny_vae(SDXL_VAE_SCALE)
        text_encoder_2 = CLIPTextModelWithProjection(
            tiny_clip_text_config(tokenizer_2, BIGG_WIDTH, "gelu", tokenizer_2.pad_token_id))
        make_weights_interesting(unet, text_encoder_2)
    scheduler = EulerDiscreteScheduler.from_config(read_json(_REFINER_CONFIGS / "scheduler" / "scheduler_config.json"))
    pipe = StableDiffusionXLImg2ImgPipeline(vae=vae.eval(), text_encoder=None, text_encoder_2=text_encoder_2.eval(),
                                            tokenizer=None, tokenizer_2=tokenizer_2, unet=unet.eval(),
                                            scheduler=scheduler, requires_aesthetics_score=True,
                                            force_zeros_for_empty_prompt=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sdxl_refiner_config_json(pipe: Any) -> str:
    """Describe a tiny refiner pipeline in the ``sdapi.diffusers_config/1`` metadata format (deterministic JSON)."""
    config = {
        "format": DIFFUSERS_CONFIG_FORMAT,
        "pipeline": SDXL_REFINER_PIPELINE,
        "model_index": read_json(_REFINER_CONFIGS / "model_index.json"),
        "scheduler": plain_config(pipe.scheduler.config),
        "text_encoder_2": text_encoder_config(pipe.text_encoder_2, "CLIPTextModelWithProjection"),
        "tokenizer_2": read_json(_REFINER_CONFIGS / "tokenizer_2" / "tokenizer_config.json"),
        "unet": plain_config(pipe.unet.config),
        "vae": plain_config(pipe.vae.config),
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def write_demo_sdxl_refiner_checkpoint(path: Path, seed: int = DEMO_SDXL_REFINER_SEED) -> Path:
    """Build the tiny refiner pipeline and save it as an original-layout ``.safetensors``.

    Returns:
        The destination path.
    """
    pipe = build_tiny_sdxl_refiner_pipeline(seed)
    metadata = {DIFFUSERS_CONFIG_KEY: sdxl_refiner_config_json(pipe), NOTE_KEY: DEMO_NOTE}
    return save_single_file(pipe, Path(path), metadata)


def write_demo_sdxl_refiner(data_dir: Path) -> Path:
    """Make sure ``<data_dir>/models/Stable-diffusion/demo-sdxl-refiner.safetensors`` exists and return it."""
    path = Path(data_dir) / MODELS_SUBDIR / DEMO_SDXL_REFINER_NAME
    if not path.exists():
        write_demo_sdxl_refiner_checkpoint(path)
    return path
