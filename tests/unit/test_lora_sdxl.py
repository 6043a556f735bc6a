"""SDXL LoRA files: kohya's SDXL names map onto every layer of the tiny SDXL pipeline, diffusers loads the same
file, and a file made for the other model family is recognised.

The expected key set is derived independently of sdapi's LoRA code: kohya's SDXL UNet (``sdxl_original_unet.py``)
is the SGM layout of the single-file checkpoint, so its LoRA names are ``lora_unet_`` + every Linear/Conv2d weight
path under ``input_blocks``/``middle_block``/``output_blocks`` (kohya's Transformer2DModel, ResnetBlock2D,
Downsample2D and Upsample2D children; ``input_blocks.0.0`` is ``conv_in``, outside them), dots as underscores;
the text encoders are transformers' CLIP models, ``lora_te1_``/``lora_te2_`` + their attention and MLP Linears.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdapi.engine.checkpoint_loader import read_checkpoint_header
from sdapi.engine.demo_lora_sdxl import write_demo_sdxl_lora
from sdapi.engine.demo_sdxl import build_tiny_sdxl_pipeline, write_demo_sdxl_checkpoint
from sdapi.engine.lora import fits
from sdapi.engine.lora_family import SD, SDXL, family_of_file, mismatch
from sdapi.engine.lora_file import load_lora_network
from sdapi.engine.lora_targets import target_table

UNET_BLOCKS = ("input_blocks.", "middle_block.", "output_blocks.")
TEXT_LAYERS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


@pytest.fixture(scope="module")
def sdxl_pipe():
    return build_tiny_sdxl_pipeline(0)


@pytest.fixture(scope="module")
def sdxl_lora(tmp_path_factory):
    return write_demo_sdxl_lora(tmp_path_factory.mktemp("sdxl-lora"))


def expected_kohya_sdxl_names(checkpoint) -> set[str]:
    """A full kohya SDXL LoCon's layer names for a checkpoint, from its SGM-layout keys alone."""
    header = read_checkpoint_header(checkpoint)
    names = set()
    for key, shape in header.shapes.items():
        path = key.removeprefix("model.diffusion_model.")
        if path == key or not path.endswith(".weight") or len(shape) not in (2, 4):
            continue
        if path.startswith(UNET_BLOCKS) and not path.startswith("input_blocks.0."):
            names.add("lora_unet_" + path.removesuffix(".weight").replace(".", "_"))
    # CLIP-L is stored in transformers' layout, bigG in OpenCLIP's (one c_fc per residual block).
    layer_counts = {"lora_te1_": sum(key.startswith("conditioner.embedders.0.transformer.text_model.encoder.layers.")
                                     and key.endswith(".mlp.fc1.weight") for key in header.shapes),
                    "lora_te2_": sum(key.startswith("conditioner.embedders.1.model.transformer.resblocks.")
                                     and key.endswith(".mlp.c_fc.weight") for key in header.shapes)}
    for prefix, layers in layer_counts.items():
        assert layers > 0
        names |= {f"{prefix}text_model_encoder_layers_{i}_{part.replace('.', '_')}"
                  for i in range(layers) for part in TEXT_LAYERS}
    return names


def test_every_layer_of_a_full_kohya_sdxl_locon_maps_to_a_module_it_fits(sdxl_pipe, sdxl_lora, tmp_path):
    expected = expected_kohya_sdxl_names(write_demo_sdxl_checkpoint(tmp_path / "demo-sdxl.safetensors"))
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in expected
    assert {"lora_unet_input_blocks_1_0_in_layers_2", "lora_unet_input_blocks_1_0_emb_layers_1",
            "lora_unet_input_blocks_3_0_op", "lora_unet_output_blocks_2_2_conv",
            "lora_unet_input_blocks_4_0_skip_connection", "lora_unet_middle_block_1_proj_in"} <= expected
    network = load_lora_network(sdxl_lora, torch.device("cpu"), torch.float32)
    assert set(network.layers) == expected  # the demo file is exactly kohya's full SDXL LoCon
    table = target_table(sdxl_pipe)
    assert sorted(expected - set(table)) == []
    misfits = [name for name, layer in network.layers.items() if not fits(layer, table[name].module)]
    assert misfits == []
    assert network.family == SDXL
    assert any(layer.down.dim() == 4 and layer.down.shape[2:] == (3, 3) for layer in network.layers.values())


def test_sdxl_tables_take_kohya_sdxl_text_names_not_sd1_ones(sdxl_pipe):
    table = target_table(sdxl_pipe)
    assert table["lora_te1_text_model_encoder_layers_0_self_attn_q_proj"].module is \
        dict(sdxl_pipe.text_encoder.named_modules())["text_model.encoder.layers.0.self_attn.q_proj"]
    assert table["lora_te2_text_model_encoder_layers_2_mlp_fc2"].module is \
        dict(sdxl_pipe.text_encoder_2.named_modules())["text_model.encoder.layers.2.mlp.fc2"]
    assert not any(name.startswith("lora_te_") for name in table)  # A1111 maps lora_te_ to nothing on SDXL


def test_diffusers_loads_the_demo_sdxl_lora_into_every_layer(sdxl_pipe, sdxl_lora):
    from peft.tuners.lora import LoraLayer

    def image():
        return sdxl_pipe(prompt="a cat", num_inference_steps=2, height=64, width=64, output_type="np",
                         generator=torch.Generator().manual_seed(0)).images[0]

    before = image()
    sdxl_pipe.load_lora_weights(str(sdxl_lora))
    try:
        counts = [sum(isinstance(m, LoraLayer) for m in part.modules())
                  for part in (sdxl_pipe.unet, sdxl_pipe.text_encoder, sdxl_pipe.text_encoder_2)]
        network = load_lora_network(sdxl_lora, torch.device("cpu"), torch.float32)
        assert counts == [sum(name.startswith(prefix) for name in network.layers)
                          for prefix in ("lora_unet_", "lora_te1_", "lora_te2_")]
        assert np.abs(image() - before).mean() > 1e-3
    finally:
        sdxl_pipe.unload_lora_weights()


@pytest.mark.parametrize("names, metadata, family", [
    (["lora_unet_x"], {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL),
    (["lora_te_text_model_encoder_layers_0_mlp_fc1"], {"ss_base_model_version": "sd_v1"}, SD),
    (["lora_te_text_model_encoder_layers_0_mlp_fc1"], {"ss_base_model_version": "sd_v2"}, SD),
    (["lora_te1_a", "lora_te2_b"], {}, SDXL),
    (["lora_te_a", "lora_unet_b"], {}, SD),
    (["lora_te1_a", "lora_unet_b"], {}, None),  # lora_te1_ alone: SD 1.x files use it too (A1111 maps both)
    (["lora_unet_down_blocks_0_attentions_0_proj_in"], {"ss_base_model_version": "flux1"}, None),
])
def test_the_family_comes_from_metadata_then_text_encoder_names(names, metadata, family):
    assert family_of_file(names, metadata) == family


def test_only_a_known_other_family_is_a_mismatch():
    assert mismatch(SD, SDXL) == "it was made for SD 1.x/2.x and the current model is SDXL"
    assert mismatch(SDXL, SD) == "it was made for SDXL and the current model is SD 1.x/2.x"
    assert mismatch(None, SDXL) is None and mismatch(SDXL, SDXL) is None


def test_on_the_refiner_only_unet_layers_are_targets():
    """A1111 v1.10 names the refiner's bigG ``0_model_...`` (its conditioner's embedder 0) and looks for ``lora_te1_``
    as ``0_transformer_text_model_...`` and ``lora_te2_`` as ``1_model_...``: no text encoder layer of an SDXL LoRA
    applies to a refiner, its UNet layers do where they fit."""
    from sdapi.engine.demo_sdxl_refiner import build_tiny_sdxl_refiner_pipeline

    names = set(target_table(build_tiny_sdxl_refiner_pipeline()))
    assert names and all(name.startswith("lora_unet_") for name in names)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k" in names
