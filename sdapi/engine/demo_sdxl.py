"""A tiny random-weight SDXL checkpoint, built by code, in the original (Stability sgm) single-file layout.

The topology is SDXL's (no attention in the first level, more transformer layers deeper down, the ``text_time``
added embedding of the pooled text and six size numbers, two text encoders whose hidden states are concatenated),
only much narrower. Both tokenizers are the real CLIP vocabulary; the second pads with ``!`` as SDXL's does.

The two text encoders must differ in width: diffusers' single-file loader tells them apart by their
position-embedding width, as real SDXL files (768 and 1280) allow.

The file loads through :func:`sdapi.engine.checkpoint_loader.load_pipeline` as a real SDXL file does: its keys say
SDXL (:mod:`sdapi.engine.model_type`), and its metadata carries the tiny sizes in place of the shipped real configs.
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
    SDXL_PIPELINE,
)
from sdapi.engine.conditioning_sdxl import TIME_IDS
from sdapi.engine.demo_models import (
    DEMO_NOTE,
    MODELS_SUBDIR,
    VOLATILE_TE_KEYS,
    build_tiny_vae,
    build_tokenizer,
    make_weights_interesting,
    plain_config,
    read_json,
    tiny_clip_text_config,
)
from sdapi.engine.ldm_layout import save_single_file

DEMO_SDXL_NAME = "demo-sdxl.safetensors"
SDXL_VAE_SCALE = 0.13025
# Widths of the tiny CLIP-L and bigG stand-ins; they must differ (see the module docstring).
CLIP_L_WIDTH, BIGG_WIDTH = 32, 48
TIME_EMBED_WIDTH = 8

_SDXL_CONFIGS = CONFIGS_DIR / "sdxl"


def _build_unet(in_channels: int = 4) -> Any:
    """The tiny SDXL-topology UNet: three levels, attention in the lower two, ``text_time`` added embedding (9 input
    channels: SDXL inpainting's latent, mask and masked-image latent)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(16, 32, 32),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        cross_attention_dim=CLIP_L_WIDTH + BIGG_WIDTH,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_WIDTH,
        projection_class_embeddings_input_dim=TIME_IDS * TIME_EMBED_WIDTH + BIGG_WIDTH,
    )


def build_tiny_sdxl_pipeline(seed: int, in_channels: int = 4) -> Any:
    """Build a tiny SDXL-topology pipeline with random weights (from a forked RNG seeded with ``seed``).

    Args:
        seed: the weight seed.
        in_channels: the UNet's input channels (9: an SDXL inpainting model).

    Returns:
        A ``diffusers.StableDiffusionXLPipeline`` on CPU, float32, progress bar off.
    """
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = build_tokenizer(_SDXL_CONFIGS / "tokenizer")
    tokenizer_2 = build_tokenizer(_SDXL_CONFIGS / "tokenizer_2")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = _build_unet(in_channels)
        vae = build_tiny_vae(SDXL_VAE_SCALE)
        # CLIP-L uses OpenAI's quick_gelu, bigG plain gelu, as the real ones do.
        text_encoder = CLIPTextModel(
            tiny_clip_text_config(tokenizer, CLIP_L_WIDTH, "quick_gelu", tokenizer.pad_token_id))
        text_encoder_2 = CLIPTextModelWithProjection(
            tiny_clip_text_config(tokenizer_2, BIGG_WIDTH, "gelu", tokenizer_2.pad_token_id))
        make_weights_interesting(unet, text_encoder, text_encoder_2)
    scheduler = EulerDiscreteScheduler.from_config(read_json(_SDXL_CONFIGS / "scheduler" / "scheduler_config.json"))
    pipe = StableDiffusionXLPipeline(vae=vae.eval(), text_encoder=text_encoder.eval(),
                                     text_encoder_2=text_encoder_2.eval(), tokenizer=tokenizer,
                                     tokenizer_2=tokenizer_2, unet=unet.eval(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def text_encoder_config(model: Any, architecture: str) -> dict[str, Any]:
    """A text encoder's config as stored in the metadata (without what describes only the library run)."""
    config = model.config.to_dict()
    for key in VOLATILE_TE_KEYS:
        config.pop(key, None)
    config["architectures"] = [architecture]
    return config


def sdxl_config_json(pipe: Any) -> str:
    """Describe a tiny SDXL pipeline in the ``sdapi.diffusers_config/1`` metadata format (deterministic JSON)."""
    config = {
        "format": DIFFUSERS_CONFIG_FORMAT,
        "pipeline": SDXL_PIPELINE,
        "model_index": read_json(_SDXL_CONFIGS / "model_index.json"),
        "scheduler": plain_config(pipe.scheduler.config),
        "text_encoder": text_encoder_config(pipe.text_encoder, "CLIPTextModel"),
        "text_encoder_2": text_encoder_config(pipe.text_encoder_2, "CLIPTextModelWithProjection"),
        "tokenizer": read_json(_SDXL_CONFIGS / "tokenizer" / "tokenizer_config.json"),
        "tokenizer_2": read_json(_SDXL_CONFIGS / "tokenizer_2" / "tokenizer_config.json"),
        "unet": plain_config(pipe.unet.config),
        "vae": plain_config(pipe.vae.config),
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def write_demo_sdxl_checkpoint(path: Path, seed: int = 0, dtype: torch.dtype = torch.float32,
                               in_channels: int = 4) -> Path:
    """Build the tiny SDXL pipeline and save it as an original-layout ``.safetensors``.

    Args:
        path: destination file.
        seed: the weight seed.
        dtype: the stored weight dtype (``torch.float16`` gives an fp16 file, as most SDXL downloads are).
        in_channels: the UNet's input channels (9: an SDXL inpainting checkpoint).

    Returns:
        The destination path.
    """
    pipe = build_tiny_sdxl_pipeline(seed, in_channels).to(dtype=dtype)
    metadata = {DIFFUSERS_CONFIG_KEY: sdxl_config_json(pipe), NOTE_KEY: DEMO_NOTE}
    return save_single_file(pipe, Path(path), metadata)


def write_demo_sdxl(data_dir: Path) -> Path:
    """Make sure ``<data_dir>/models/Stable-diffusion/demo-sdxl.safetensors`` exists (seed 0) and return it."""
    path = Path(data_dir) / MODELS_SUBDIR / DEMO_SDXL_NAME
    if not path.exists():
        write_demo_sdxl_checkpoint(path)
    return path
