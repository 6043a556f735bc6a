"""Tiny random-weight SD-1.x checkpoints, built entirely by code.

They let the server start and answer every endpoint without downloading a real
model. The topology is SD 1.x (same block layout, key names and VAE /8
downscale), only much narrower, and the text encoder uses the real CLIP
tokenizer and vocabulary, so prompts tokenise exactly as with a real model.
Images are coloured noise.

The files are written in the original single-file layout with the diffusers
configs in their metadata, and load back through
:func:`sdapi.engine.checkpoint_loader.load_pipeline` like any real checkpoint.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from pathlib import Path
from typing import Any

import torch

from sdapi.engine.checkpoint_loader import (
    CONFIGS_DIR,
    DIFFUSERS_CONFIG_FORMAT,
    DIFFUSERS_CONFIG_KEY,
    NOTE_KEY,
    TOKENIZER_DIR,
)
from sdapi.engine.ldm_layout import save_single_file

DEMO_NOTE = "tiny random-weight demo checkpoint built by sdapi; real images need a real checkpoint"
DEMO_MODELS = (("demo-sd15.safetensors", 0), ("demo-sd15-b.safetensors", 1))
MODELS_SUBDIR = Path("models") / "Stable-diffusion"
# The tiny SD 1.x text encoder's width (a real SD 1.x one is 768): what a demo embedding's vectors have.
SD15_TEXT_WIDTH = 32

_SD15_CONFIGS = CONFIGS_DIR / "sd15"
_TOKENIZER_VOCAB_NOTE = "openai/clip-vit-large-patch14 vocab.json + merges.txt (49408 tokens); shipped in sdapi/configs/tokenizers/clip"
# transformers config keys that only describe the library run, not the model.
VOLATILE_TE_KEYS = ("transformers_version", "_name_or_path", "dtype", "torch_dtype")
_KEPT_PRIVATE_KEYS = ("_class_name", "_diffusers_version")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON file.

    Args:
        path: the file.

    Returns:
        The parsed object.
    """
    return json.loads(path.read_text(encoding="utf-8"))


def build_tokenizer(config_dir: Path = _SD15_CONFIGS / "tokenizer") -> Any:
    """Load the shipped real CLIP tokenizer with the settings of a shipped tokenizer folder.

    Args:
        config_dir: the folder with its ``tokenizer_config.json`` (SD 1.x's by default; SD 2.x's and SDXL's
            second one pad with ``!``).

    Returns:
        A ``CLIPTokenizer`` (bos 49406, eos 49407, pad = eos for SD 1.x, 77 tokens).
    """
    from transformers import CLIPTokenizer

    settings = read_json(Path(config_dir) / "tokenizer_config.json")
    settings.pop("tokenizer_class", None)
    # from_pretrained, not CLIPTokenizer(vocab_file=...): transformers 5 silently ignores those kwargs.
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), **settings)


def _build_unet(in_channels: int = 4) -> Any:
    """Build the tiny SD-1.x-topology UNet (about 0.6 M parameters).

    Args:
        in_channels: 4, or 9 for an inpainting UNet (latent + mask + masked-image latent).

    Returns:
        A randomly initialised ``UNet2DConditionModel``.
    """
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(16, 16, 32, 32),
        norm_num_groups=4,
        cross_attention_dim=32,
        attention_head_dim=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )


def build_tiny_vae(scaling_factor: float = 0.18215) -> Any:
    """Build the tiny VAE: 4 levels, so it downscales by 8 like SD's.

    Args:
        scaling_factor: the latent scale (SD 1.x/2.x 0.18215, SDXL 0.13025).

    Returns:
        A randomly initialised ``AutoencoderKL``.
    """
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=2,
        norm_num_groups=4,
        latent_channels=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def tiny_clip_text_config(tokenizer: Any, width: int, act: str, pad_token_id: int) -> Any:
    """A 3-layer CLIP text config over the full vocabulary (3 layers: the penultimate one is a real layer)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id,
        hidden_act=act,
        projection_dim=width,
    )


def _build_text_encoder(tokenizer: Any) -> Any:
    """Build the tiny CLIP text encoder over the full 49408-token vocabulary.

    Args:
        tokenizer: the CLIP tokenizer (for the special token ids).

    Returns:
        A randomly initialised ``CLIPTextModel``.
    """
    from transformers import CLIPTextModel

    config = tiny_clip_text_config(tokenizer, SD15_TEXT_WIDTH, "quick_gelu", tokenizer.pad_token_id)
    return CLIPTextModel(config)


@torch.no_grad()
def make_weights_interesting(unet: Any, *text_encoders: Any) -> None:
    """Adjust random weights so the tiny model behaves usefully.

    * Text-encoder LayerNorms get random weights and biases: with the default
      (1, 0) every token embedding has mean exactly 0, and A1111's emphasis
      mean-restore divides by that mean (NaN images).
    * Cross-attention q/k are scaled by 3 so attention is not uniform and
      prompts visibly change the image.

    Args:
        unet: the UNet (modified in place).
        text_encoders: the text encoder(s) (modified in place).
    """
    modules = [module for text_encoder in text_encoders for module in text_encoder.modules()]
    for module in modules:
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.copy_(1.0 + 0.2 * torch.randn_like(module.weight))
            module.bias.copy_(0.1 + 0.2 * torch.randn_like(module.bias))
    for name, module in unet.named_modules():
        if name.endswith(("attn2.to_q", "attn2.to_k")):
            module.weight.mul_(3.0)


def build_tiny_sd15_pipeline(seed: int, in_channels: int = 4) -> Any:
    """Build a tiny SD-1.x-topology pipeline with random weights.

    All weights come from ``torch.manual_seed(seed)`` inside a forked RNG, so the
    caller's global RNG state is left untouched. The same seed and library
    versions give the same weights.

    Args:
        seed: the weight seed.
        in_channels: the UNet's input channels (9: an inpainting model).

    Returns:
        A ``diffusers.StableDiffusionPipeline`` on CPU, float32, progress bar off.
    """
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = _build_unet(in_channels)
        vae = build_tiny_vae()
        text_encoder = _build_text_encoder(tokenizer)
        make_weights_interesting(unet, text_encoder)
    # from_config keeps SD-1.5's extra keys (clip_sample: false) for later scheduler swaps.
    scheduler = PNDMScheduler.from_config(read_json(_SD15_CONFIGS / "scheduler" / "scheduler_config.json"))
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def plain_config(config: Any) -> dict[str, Any]:
    """Turn a diffusers FrozenDict config into plain, deterministic JSON-ready data.

    Private keys are dropped (as diffusers' ``save_config`` does): notably
    ``_use_default_values`` is a list in set order, which differs between
    processes and would make the checkpoint bytes (and its hash) vary.

    Args:
        config: a model or scheduler ``.config``.

    Returns:
        A plain dict (tuples become lists via a JSON round trip).
    """
    kept = {k: v for k, v in dict(config).items() if not k.startswith("_") or k in _KEPT_PRIVATE_KEYS}
    return json.loads(json.dumps(kept))


def diffusers_config_json(pipe: Any) -> str:
    """Describe a pipeline in the ``sdapi.diffusers_config/1`` metadata format.

    Args:
        pipe: a ``StableDiffusionPipeline`` built by :func:`build_tiny_sd15_pipeline`.

    Returns:
        Deterministic JSON (sorted keys) for the checkpoint metadata.
    """
    text_encoder = pipe.text_encoder.config.to_dict()
    for key in VOLATILE_TE_KEYS:
        text_encoder.pop(key, None)
    text_encoder["architectures"] = ["CLIPTextModel"]
    tokenizer = read_json(_SD15_CONFIGS / "tokenizer" / "tokenizer_config.json")
    tokenizer["vocab"] = _TOKENIZER_VOCAB_NOTE
    config = {
        "format": DIFFUSERS_CONFIG_FORMAT,
        "pipeline": "StableDiffusionPipeline",
        "model_index": read_json(_SD15_CONFIGS / "model_index.json"),
        "scheduler": plain_config(pipe.scheduler.config),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "unet": plain_config(pipe.unet.config),
        "vae": plain_config(pipe.vae.config),
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def write_demo_checkpoint(path: Path, seed: int, in_channels: int = 4) -> Path:
    """Build a tiny pipeline and save it as an original-layout ``.safetensors``.

    Args:
        path: destination file.
        seed: the weight seed.
        in_channels: the UNet's input channels (9: an inpainting checkpoint).

    Returns:
        The destination path.
    """
    pipe = build_tiny_sd15_pipeline(seed, in_channels)
    metadata = {DIFFUSERS_CONFIG_KEY: diffusers_config_json(pipe), NOTE_KEY: DEMO_NOTE}
    return save_single_file(pipe, Path(path), metadata)
