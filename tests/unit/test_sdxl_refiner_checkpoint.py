"""SDXL refiner and SDXL inpainting single-file checkpoints: the shipped real-size configs give the key names and
shapes of the real files (which diffusers and A1111 recognise as such), a file without metadata gets its config dir,
and the tiny refiner file loads back exactly as a ``StableDiffusionXLImg2ImgPipeline`` with bigG alone."""

from __future__ import annotations

import json

import pytest
import torch

from sdapi.engine import ldm_layout
from sdapi.engine import model_type as mt
from sdapi.engine.checkpoint_loader import (
    CONFIGS_DIR,
    CheckpointHeader,
    load_pipeline,
    read_checkpoint_header,
    resolve_config_dir,
)
from sdapi.engine.conditioning_sdxl import REFINER_TIME_IDS, TIME_IDS
from sdapi.engine.demo_sdxl_refiner import build_tiny_sdxl_refiner_pipeline, write_demo_sdxl_refiner_checkpoint

# Keys a real refiner file (sd_xl_refiner_1.0.safetensors) has and how others recognise it: diffusers' single-file
# loader takes ``...embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias`` for "xl_refiner" and
# ``...embedders.0.model.text_projection`` for the refiner's bigG (CHECKPOINT_KEY_NAMES); A1111 v1.10.1's
# guess_model_config_from_state_dict takes ``...embedders.0.model.ln_final.weight`` for sd_xl_refiner.yaml.
REAL_REFINER_KEYS = (
    "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias",
    "conditioner.embedders.0.model.transformer.resblocks.31.attn.in_proj_weight",
    "conditioner.embedders.0.model.text_projection",
    "conditioner.embedders.0.model.ln_final.weight",
    "conditioner.embedders.0.model.positional_embedding",
    "model.diffusion_model.input_blocks.0.0.weight",
    "model.diffusion_model.label_emb.0.0.weight",
    "model.diffusion_model.middle_block.1.transformer_blocks.3.attn2.to_k.weight",
    "first_stage_model.decoder.up.3.block.2.conv2.weight",
)


def _config(model_type: str, component: str) -> dict:
    return json.loads((CONFIGS_DIR / model_type / component / "config.json").read_text())


def _real_size_keys(model_type: str, in_channels: int = 4) -> dict[str, tuple[int, ...]]:
    """The ldm keys and shapes of a shipped config, built on the meta device (no memory, no weights)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config({**_config(model_type, "unet"), "in_channels": in_channels})
        vae = AutoencoderKL.from_config(_config(model_type, "vae"))
        bigg = CLIPTextModelWithProjection(CLIPTextConfig(**_config(model_type, "text_encoder_2")))
        clip_l = None if model_type == mt.SDXL_REFINER else CLIPTextModel(
            CLIPTextConfig(**_config(model_type, "text_encoder")))
    keys = ldm_layout.unet_to_ldm(unet.state_dict(), unet.config)
    keys.update(ldm_layout.vae_to_ldm(vae.state_dict(), vae.config))
    if clip_l is None:
        keys.update(ldm_layout.openclip_to_ldm(bigg.state_dict(), ldm_layout.SDXL_REFINER_OPENCLIP_PREFIX))
    else:
        keys.update(ldm_layout.clip_to_ldm(clip_l.state_dict(), ldm_layout.SDXL_CLIP_PREFIX))
        keys.update(ldm_layout.openclip_to_ldm(bigg.state_dict(), ldm_layout.SDXL_OPENCLIP_PREFIX))
    return {k: tuple(v.shape) for k, v in keys.items()}


def _on_meta(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def test_the_shipped_refiner_config_has_the_real_files_keys_and_sizes():
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type, is_open_clip_sdxl_refiner_model

    shapes = _real_size_keys(mt.SDXL_REFINER)
    assert set(REAL_REFINER_KEYS) <= set(shapes)
    assert not any(k.startswith(("conditioner.embedders.1.", "conditioner.embedders.0.transformer.")) for k in shapes)
    # The refiner's UNet: 384 channels, a 1280-wide context, and the pooled bigG (1280) with five numbers of 256.
    assert shapes["model.diffusion_model.input_blocks.0.0.weight"] == (384, 4, 3, 3)
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == (1536, 1280 + REFINER_TIME_IDS * 256)
    assert shapes["model.diffusion_model.middle_block.1.transformer_blocks.3.attn2.to_k.weight"] == (1536, 1280)
    assert shapes["conditioner.embedders.0.model.text_projection"] == (1280, 1280)
    assert mt.detect_model_type(shapes) == mt.SDXL_REFINER
    assert infer_diffusers_model_type(_on_meta(shapes)) == "xl_refiner"
    assert is_open_clip_sdxl_refiner_model(_on_meta(shapes))


def test_a_real_refiner_file_without_metadata_gets_the_img2img_pipeline_with_bigg_alone(tmp_path):
    shapes = {key: (1,) for key in REAL_REFINER_KEYS}
    folder = resolve_config_dir(tmp_path / "sd_xl_refiner_1.0.safetensors", CheckpointHeader({}, shapes), tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLImg2ImgPipeline" and index["requires_aesthetics_score"] is True
    assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None]
    assert not (folder / "text_encoder").exists() and not (folder / "tokenizer").exists()
    assert (folder / "tokenizer_2" / "vocab.json").is_file() and (folder / "tokenizer_2" / "merges.txt").is_file()
    assert json.loads((folder / "tokenizer_2" / "tokenizer_config.json").read_text())["pad_token"] == "!"
    unet, bigg = json.loads((folder / "unet" / "config.json").read_text()), _config(mt.SDXL_REFINER, "text_encoder_2")
    assert unet["cross_attention_dim"] == bigg["hidden_size"] == 1280
    assert unet["projection_class_embeddings_input_dim"] == \
        bigg["projection_dim"] + REFINER_TIME_IDS * unet["addition_time_embed_dim"]


def test_a_real_sdxl_inpainting_file_gets_the_sdxl_config_with_a_9_channel_unet(tmp_path):
    shapes = _real_size_keys(mt.SDXL, in_channels=9)
    assert shapes["model.diffusion_model.input_blocks.0.0.weight"] == (320, 9, 3, 3)
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == (1280, 1280 + TIME_IDS * 256)  # A1111's adm 2816
    assert mt.detect_model_type(shapes) == mt.SDXL_INPAINT
    folder = resolve_config_dir(tmp_path / "sd_xl_inpaint.safetensors", CheckpointHeader({}, shapes), tmp_path)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    unet = json.loads((folder / "unet" / "config.json").read_text())
    assert unet["in_channels"] == 9 and unet == {**_config(mt.SDXL, "unet"), "in_channels": 9}


@pytest.fixture(scope="module")
def tiny_refiner(tmp_path_factory):
    return write_demo_sdxl_refiner_checkpoint(tmp_path_factory.mktemp("refiner") / "tiny-refiner.safetensors", seed=4)


def test_the_tiny_refiner_is_written_in_the_refiners_layout(tiny_refiner):
    shapes = read_checkpoint_header(tiny_refiner).shapes
    assert mt.detect_model_type(shapes) == mt.SDXL_REFINER
    text_keys = {k for k in shapes if k.startswith("conditioner.")}
    assert text_keys and all(k.startswith(ldm_layout.SDXL_REFINER_OPENCLIP_PREFIX) for k in text_keys)
    assert ldm_layout.SDXL_REFINER_OPENCLIP_PREFIX + "text_projection" in shapes
    assert 1_000_000 < tiny_refiner.stat().st_size < 20_000_000


def test_the_tiny_refiner_loads_back_as_the_pipeline_it_was_written_from(tiny_refiner, tmp_path):
    pipe = load_pipeline(tiny_refiner, cache_dir=tmp_path)
    original = build_tiny_sdxl_refiner_pipeline(4)
    assert type(pipe).__name__ == "StableDiffusionXLImg2ImgPipeline" and pipe.config.requires_aesthetics_score
    assert pipe.text_encoder is None and pipe.tokenizer is None and pipe.tokenizer_2.pad_token == "!"
    for name in ("unet", "vae", "text_encoder_2"):
        loaded, expected = getattr(pipe, name).state_dict(), getattr(original, name).state_dict()
        assert set(loaded) == set(expected)
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)
