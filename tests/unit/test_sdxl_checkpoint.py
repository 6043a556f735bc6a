"""SDXL single-file checkpoints: the shipped real-size configs give the key names of a real SDXL base file, and the
tiny SDXL file (fp32 and fp16) loads back exactly through the loader real files use."""

from __future__ import annotations

import json

import pytest
import torch

from sdapi.engine import ldm_layout
from sdapi.engine import model_type as mt
from sdapi.engine.checkpoint_loader import CONFIGS_DIR, load_pipeline, read_checkpoint_header, resolve_config_dir
from sdapi.engine.demo_sdxl import build_tiny_sdxl_pipeline, write_demo_sdxl_checkpoint

# Keys of Stability's sd_xl_base_1.0.safetensors, one per kind of block (facts of that file's header): the deepest
# level's tenth transformer block, the middle block, an upsampler after an attention, a skip connection, CLIP-L's
# twelfth layer, bigG's 32nd resblock and projection, the added-vector embedding, the VAE decoder.
REAL_SDXL_KEYS = (
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn1.to_q.weight",
    "model.diffusion_model.input_blocks.8.1.transformer_blocks.9.ff.net.2.weight",
    "model.diffusion_model.middle_block.1.transformer_blocks.9.attn2.to_k.weight",
    "model.diffusion_model.output_blocks.2.2.conv.weight",
    "model.diffusion_model.output_blocks.8.0.skip_connection.weight",
    "model.diffusion_model.label_emb.0.0.weight",
    "conditioner.embedders.0.transformer.text_model.encoder.layers.11.self_attn.k_proj.weight",
    "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight",
    "conditioner.embedders.1.model.text_projection",
    "conditioner.embedders.1.model.positional_embedding",
    "first_stage_model.decoder.up.3.block.2.conv2.weight",
)


def _real_size_sdxl_keys() -> dict[str, tuple[int, ...]]:
    """The ldm keys and shapes of the shipped SDXL config, built on the meta device (no memory, no weights)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def config(component: str) -> dict:
        return json.loads((CONFIGS_DIR / "sdxl" / component / "config.json").read_text())

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config("unet"))
        vae = AutoencoderKL.from_config(config("vae"))
        clip_l = CLIPTextModel(CLIPTextConfig(**config("text_encoder")))
        bigg = CLIPTextModelWithProjection(CLIPTextConfig(**config("text_encoder_2")))
    keys = ldm_layout.unet_to_ldm(unet.state_dict(), unet.config)
    keys.update(ldm_layout.vae_to_ldm(vae.state_dict(), vae.config))
    keys.update(ldm_layout.clip_to_ldm(clip_l.state_dict(), ldm_layout.SDXL_CLIP_PREFIX))
    keys.update(ldm_layout.openclip_to_ldm(bigg.state_dict(), ldm_layout.SDXL_OPENCLIP_PREFIX))
    return {k: tuple(v.shape) for k, v in keys.items()}


def test_the_shipped_sdxl_config_has_the_real_files_keys_and_sizes():
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    shapes = _real_size_sdxl_keys()
    assert set(REAL_SDXL_KEYS) <= set(shapes)
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == (1280, 2816)
    assert shapes["conditioner.embedders.1.model.text_projection"] == (1280, 1280)
    unet_params = sum(torch.Size(s).numel() for k, s in shapes.items() if k.startswith(ldm_layout.UNET_PREFIX))
    assert unet_params == 2_567_463_684  # SDXL base's published UNet size
    assert mt.detect_model_type(shapes) == mt.SDXL
    assert infer_diffusers_model_type({k: torch.empty(s, device="meta") for k, s in shapes.items()}) == "xl_base"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sdxl-files")
    return (write_demo_sdxl_checkpoint(folder / "tiny-sdxl.safetensors", seed=3),
            write_demo_sdxl_checkpoint(folder / "tiny-sdxl-fp16.safetensors", seed=3, dtype=torch.float16))


def test_the_tiny_file_is_written_in_the_original_layout_and_detected_as_sdxl(tiny_files):
    shapes = read_checkpoint_header(tiny_files[0]).shapes
    assert mt.detect_model_type(shapes) == mt.SDXL
    prefixes = {key.split(".")[0] + "." + key.split(".")[1] for key in shapes}
    assert prefixes == {"model.diffusion_model", "first_stage_model.encoder", "first_stage_model.decoder",
                        "first_stage_model.quant_conv", "first_stage_model.post_quant_conv", "conditioner.embedders"}
    assert any(k.startswith(ldm_layout.SDXL_CLIP_PREFIX + "text_model.") for k in shapes)
    assert any(k.startswith(ldm_layout.SDXL_OPENCLIP_PREFIX + "transformer.resblocks.") for k in shapes)


@pytest.mark.parametrize("index, tolerance", [(0, 0.0), (1, 1e-3)])
def test_the_tiny_file_loads_back_as_the_pipeline_it_was_written_from(tiny_files, tmp_path, index, tolerance):
    pipe = load_pipeline(tiny_files[index], cache_dir=tmp_path)
    original = build_tiny_sdxl_pipeline(3)
    assert type(pipe).__name__ == "StableDiffusionXLPipeline" and pipe.unet.dtype == torch.float32
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        loaded, expected = getattr(pipe, name).state_dict(), getattr(original, name).state_dict()
        assert set(loaded) == set(expected)
        assert max((loaded[k] - expected[k]).abs().max().item() for k in expected) <= tolerance
    assert pipe.tokenizer_2.pad_token == "!" and pipe.tokenizer.pad_token == "<|endoftext|>"


def test_an_sd_config_in_the_metadata_of_sdxl_keys_is_refused(tiny_files, tmp_path):
    from sdapi.engine.checkpoint_loader import CheckpointHeader, UnsupportedCheckpoint
    from sdapi.engine.demo_models import build_tiny_sd15_pipeline, diffusers_config_json

    header = read_checkpoint_header(tiny_files[0])
    wrong = CheckpointHeader({"sdapi.diffusers_config": diffusers_config_json(build_tiny_sd15_pipeline(0))},
                             header.shapes)
    with pytest.raises(UnsupportedCheckpoint, match="keys are those of a StableDiffusionXLPipeline"):
        resolve_config_dir(tiny_files[0], wrong, tmp_path)


def test_a_real_sdxl_file_without_metadata_gets_the_shipped_config_with_both_tokenizers(tmp_path):
    shapes = {"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
              "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 768),
              "conditioner.embedders.1.model.positional_embedding": (77, 1280)}
    from sdapi.engine.checkpoint_loader import CheckpointHeader

    folder = resolve_config_dir(tmp_path / "sd_xl_base_1.0.safetensors", CheckpointHeader({}, shapes), tmp_path)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    for tokenizer in ("tokenizer", "tokenizer_2"):
        assert (folder / tokenizer / "vocab.json").is_file() and (folder / tokenizer / "merges.txt").is_file()
    assert json.loads((folder / "tokenizer_2" / "tokenizer_config.json").read_text())["pad_token"] == "!"
    assert json.loads((folder / "unet" / "config.json").read_text())["cross_attention_dim"] == 2048


def test_demo_models_write_the_tiny_sdxl_file_on_request(tmp_path):
    from sdapi.engine.demo_files import write_demo_models

    assert not any(p.name == "demo-sdxl.safetensors" for p in write_demo_models(tmp_path))
    paths = write_demo_models(tmp_path, sdxl=True)
    assert paths[-3:] == [tmp_path / "models" / "Stable-diffusion" / "demo-sdxl.safetensors",
                          tmp_path / "models" / "Lora" / "demo-sdxl-lora.safetensors",
                          tmp_path / "models" / "Stable-diffusion" / "demo-sdxl-refiner.safetensors"]
    assert mt.detect_model_type(read_checkpoint_header(paths[-3]).shapes) == mt.SDXL
    assert read_checkpoint_header(paths[-2]).metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert mt.detect_model_type(read_checkpoint_header(paths[-1]).shapes) == mt.SDXL_REFINER
    assert write_demo_models(tmp_path, sdxl=True) == paths  # existing files are left alone


def test_a_half_precision_sdxl_model_keeps_its_vae_in_float32():
    from sdapi.engine.demo_models import build_tiny_sd15_pipeline
    from sdapi.engine.vae_precision import upcast_vae_if_needed

    sdxl = build_tiny_sdxl_pipeline(0).to(dtype=torch.float16)
    assert upcast_vae_if_needed(sdxl) == torch.float32 and sdxl.unet.dtype == torch.float16
    sd15 = build_tiny_sd15_pipeline(0).to(dtype=torch.float16)
    assert upcast_vae_if_needed(sd15) == torch.float16
    full = build_tiny_sdxl_pipeline(0)
    assert upcast_vae_if_needed(full) == torch.float32


def test_a_full_file_with_the_buffers_pruned_files_drop_loads_the_same(tiny_files, tmp_path):
    # Fine-tunes are often "pruned": saved without position ids, OpenCLIP's logit scale, EMA weights or the
    # schedule buffers that full training checkpoints carry. The tiny file is pruned; add them back.
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    state = load_file(tiny_files[0])
    with safe_open(tiny_files[0], "pt") as handle:
        metadata = handle.metadata()  # the tiny sizes' config
    positions = state["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"].shape[0]
    state["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"] = torch.arange(positions)[None]
    state["conditioner.embedders.1.model.logit_scale"] = torch.tensor(4.6052)
    state["model_ema.decay"] = torch.tensor(0.9999)
    state["alphas_cumprod"] = torch.linspace(0.99, 0.01, 1000)
    full = tmp_path / "full.safetensors"
    save_file(state, str(full), metadata=metadata)
    loaded, pruned = load_pipeline(full, cache_dir=tmp_path), load_pipeline(tiny_files[0], cache_dir=tmp_path)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(loaded, name).state_dict(), getattr(pruned, name).state_dict()
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in b), name
