"""Single-file checkpoint formats: ldm layout, model-type detection, loading, demo models."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import math
import pickle
from pathlib import Path

import pytest
import torch

from sdapi.engine import model_type as mt
from sdapi.engine.checkpoint_loader import (
    CONFIGS_DIR,
    DIFFUSERS_CONFIG_FORMAT,
    DIFFUSERS_CONFIG_KEY,
    TOKENIZER_DIR,
    UnsupportedCheckpoint,
    config_files_for_type,
    load_pipeline,
    materialize_config_dir,
    read_checkpoint_header,
)
from sdapi.engine.demo_files import write_demo_models
from sdapi.engine.demo_models import DEMO_NOTE, build_tiny_sd15_pipeline, write_demo_checkpoint
from sdapi.engine.ldm_layout import pipeline_to_ldm_state_dict, save_single_file, write_safetensors

torch.set_num_threads(2)

PARITY_CKPT = Path(__file__).parents[2].parent / "shared/fixtures/a1111-parity/tiny-sd15.safetensors"
COMPONENTS = ("unet", "vae", "text_encoder")


def _max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference over two state dicts with the same keys."""
    assert set(a) == set(b), sorted(set(a) ^ set(b))[:10]
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _assert_same_weights(pipe_a, pipe_b) -> None:
    """Every UNet / VAE / text-encoder tensor is bit-identical and none is left on meta."""
    for name in COMPONENTS:
        sd_a = getattr(pipe_a, name).state_dict()
        sd_b = getattr(pipe_b, name).state_dict()
        assert not any(t.is_meta for t in sd_b.values()), name
        assert _max_abs_diff(sd_a, sd_b) == 0.0, name


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ckpt")


@pytest.fixture(scope="module")
def cache_dir(workdir) -> Path:
    return workdir / "cache"


@pytest.fixture(scope="module")
def demo_pipe():
    return build_tiny_sd15_pipeline(0)


@pytest.fixture(scope="module")
def demo_ckpt(workdir) -> Path:
    return write_demo_checkpoint(workdir / "demo.safetensors", 0)


@pytest.fixture(scope="module")
def loaded_demo(demo_ckpt, cache_dir):
    return load_pipeline(demo_ckpt, cache_dir=cache_dir)


def _write_fake(path: Path, keys_and_shapes: dict[str, tuple[int, ...]], metadata=None) -> Path:
    """A tiny safetensors file with just the given key names (all zeros)."""
    return write_safetensors({k: torch.zeros(s) for k, s in keys_and_shapes.items()}, path, metadata)


# --------------------------------------------------------------------------- round trips


def test_demo_checkpoint_round_trip_is_exact(demo_pipe, loaded_demo):
    _assert_same_weights(demo_pipe, loaded_demo)
    assert type(loaded_demo).__name__ == "StableDiffusionPipeline"
    assert list(loaded_demo.unet.config.block_out_channels) == list(demo_pipe.unet.config.block_out_channels)


def test_demo_checkpoint_layout_and_metadata(demo_ckpt):
    header = read_checkpoint_header(demo_ckpt)
    assert header.metadata["sdapi.note"] == DEMO_NOTE
    config = json.loads(header.metadata[DIFFUSERS_CONFIG_KEY])
    assert config["format"] == DIFFUSERS_CONFIG_FORMAT
    assert {"model_index", "pipeline", "scheduler", "text_encoder", "tokenizer", "unet", "vae"} <= set(config)
    assert config["scheduler"]["clip_sample"] is False and config["scheduler"]["steps_offset"] == 1
    prefixes = {k.split(".")[0] for k in header.shapes}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert "model.diffusion_model.output_blocks.11.0.skip_connection.weight" in header.shapes  # SD-1.x topology
    assert header.shapes["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] == (49408, 32)
    assert mt.detect_model_type(header.shapes) == mt.SD15


def test_loaded_demo_tokenizer_and_scheduler(demo_pipe, loaded_demo):
    tok = loaded_demo.tokenizer
    assert tok("a photo of").input_ids == [49406, 320, 1125, 539, 49407]
    assert tok.model_max_length == 77 and tok.pad_token_id == 49407
    assert tok("a red fox").input_ids == demo_pipe.tokenizer("a red fox").input_ids
    assert type(loaded_demo.scheduler).__name__ == "PNDMScheduler"
    assert loaded_demo.scheduler.config.get("clip_sample") is False  # kept for DDIM swaps


def test_demo_pipeline_generates_finite_image(demo_pipe):
    images = demo_pipe("a cat", num_inference_steps=2, height=64, width=64, output_type="np").images
    assert images.shape == (1, 64, 64, 3)
    assert torch.isfinite(torch.from_numpy(images)).all()
    other = demo_pipe("a dog", num_inference_steps=2, height=64, width=64, output_type="np",
                      generator=torch.Generator().manual_seed(0)).images
    same = demo_pipe("a cat", num_inference_steps=2, height=64, width=64, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images
    assert abs(other - same).mean() > 1e-3  # prompts change the image


def test_text_encoder_mean_is_not_zero(demo_pipe):
    ids = demo_pipe.tokenizer("a cat", padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = demo_pipe.text_encoder(ids)[0]
    assert hidden.mean().abs().item() > 1e-2


def test_write_demo_models_is_deterministic_and_skips_existing(workdir, demo_ckpt):
    data_dir = workdir / "data"
    paths = write_demo_models(data_dir)
    assert [p.name for p in paths] == ["demo-sd15.safetensors", "demo-sd15-b.safetensors", "demo-lora.safetensors"]
    assert all(p.parent == data_dir / "models" / "Stable-diffusion" for p in paths[:2])
    assert paths[2].parent == data_dir / "models" / "Lora"
    assert paths[0].read_bytes() == demo_ckpt.read_bytes()  # same seed, same bytes
    assert paths[0].read_bytes() != paths[1].read_bytes()
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert write_demo_models(data_dir) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


def test_config_dir_is_cached_by_config_hash(demo_ckpt, loaded_demo, cache_dir):
    raw = read_checkpoint_header(demo_ckpt).metadata[DIFFUSERS_CONFIG_KEY]
    config_dir = cache_dir / "configs" / hashlib.sha256(raw.encode()).hexdigest()
    assert (config_dir / "tokenizer" / "vocab.json").read_bytes() == (TOKENIZER_DIR / "vocab.json").read_bytes()
    assert "vocab" not in json.loads((config_dir / "tokenizer" / "tokenizer_config.json").read_text())
    index = json.loads((config_dir / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None] and index["feature_extractor"] == [None, None]


@pytest.mark.skipif(not PARITY_CKPT.is_file(), reason="A1111 parity fixture not available")
def test_parity_fixture_loads_and_round_trips(cache_dir):
    from safetensors.torch import load_file

    pipe = load_pipeline(PARITY_CKPT, cache_dir=cache_dir)
    original = load_file(str(PARITY_CKPT))
    assert _max_abs_diff(pipeline_to_ldm_state_dict(pipe), original) == 0.0
    assert pipe.unet.config.layers_per_block == 1 and pipe.text_encoder.config.num_hidden_layers == 2


def _tiny_sd2_pipeline():
    """A tiny SD-2.x-topology pipeline: OpenCLIP-style (gelu) text encoder, linear projections."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), pad_token="!", model_max_length=77)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        unet = UNet2DConditionModel(
            sample_size=8, layers_per_block=1, block_out_channels=(16, 32), norm_num_groups=4,
            cross_attention_dim=48, attention_head_dim=(2, 4), use_linear_projection=True,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        )
        te = CLIPTextModel(CLIPTextConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                          num_attention_heads=4, vocab_size=49408, hidden_act="gelu"))
        demo = build_tiny_sd15_pipeline(3)
    return StableDiffusionPipeline(vae=demo.vae, text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=PNDMScheduler.from_config(demo.scheduler.config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def test_sd2_openclip_layout_round_trip(workdir, cache_dir):
    pipe = _tiny_sd2_pipeline()
    sd = pipeline_to_ldm_state_dict(pipe)
    assert "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight" in sd
    assert mt.detect_model_type({k: tuple(v.shape) for k, v in sd.items()}) == mt.SD2
    te_config = pipe.text_encoder.config.to_dict()
    te_config.pop("transformers_version", None)
    config = {
        "format": DIFFUSERS_CONFIG_FORMAT, "pipeline": "StableDiffusionPipeline",
        "model_index": json.loads((CONFIGS_DIR / "sd2" / "model_index.json").read_text()),
        "scheduler": dict(pipe.scheduler.config), "text_encoder": te_config,
        "tokenizer": json.loads((CONFIGS_DIR / "sd2" / "tokenizer" / "tokenizer_config.json").read_text()),
        "unet": {k: v for k, v in pipe.unet.config.items() if not k.startswith("_u")},
        "vae": {k: v for k, v in pipe.vae.config.items() if not k.startswith("_u")},
    }
    path = save_single_file(pipe, workdir / "tiny-sd2.safetensors", {DIFFUSERS_CONFIG_KEY: json.dumps(config)})
    loaded = load_pipeline(path, cache_dir=cache_dir)
    _assert_same_weights(pipe, loaded)
    assert loaded.tokenizer.pad_token == "!"


def test_load_pipeline_dtype(demo_ckpt, cache_dir):
    pipe = load_pipeline(demo_ckpt, cache_dir=cache_dir, dtype=torch.bfloat16)
    assert pipe.unet.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16


def test_write_safetensors_matches_reference_reader(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(7).half(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "i64": torch.arange(5),
        "u8": torch.arange(3, dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 4),
        "strided": torch.randn(4, 6).T,  # non-contiguous input
    }
    meta = {"b": "2", "a": "1"}
    path = write_safetensors(tensors, tmp_path / "x.safetensors", meta)
    loaded = load_file(str(path))
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == meta
    again = write_safetensors(dict(reversed(tensors.items())), tmp_path / "y.safetensors", dict(reversed(meta.items())))
    assert again.read_bytes() == path.read_bytes()  # insertion order does not change the bytes
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------- model-type detection

_UNET = "model.diffusion_model."


def _keys(family_prefix: str, in_channels: int = 4, extra: tuple[str, ...] = ()) -> dict[str, tuple[int, ...]]:
    keys = {
        f"{_UNET}input_blocks.0.0.weight": (320, in_channels, 3, 3),
        f"{_UNET}out.2.weight": (4, 320, 3, 3),
        "first_stage_model.decoder.conv_out.weight": (3, 128, 3, 3),
        f"{family_prefix}token_embedding.weight": (49408, 1024),
    }
    keys.update({k: (1,) for k in extra})
    return keys


SD1_TE = "cond_stage_model.transformer.text_model.embeddings."
SD2_TE = "cond_stage_model.model."
SDXL_TE1 = "conditioner.embedders.0.transformer.text_model.embeddings."
SDXL_TE2 = "conditioner.embedders.1.model."


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (_keys(SD1_TE), mt.SD15),
        (_keys(SD1_TE, in_channels=9), mt.SD15_INPAINT),
        (_keys(SD2_TE), mt.SD2),
        (_keys(SD2_TE, in_channels=9), mt.SD2_INPAINT),
        (_keys(SDXL_TE2, extra=(SDXL_TE1 + "x",)), mt.SDXL),
        (_keys(SDXL_TE2, in_channels=9, extra=(SDXL_TE1 + "x",)), mt.SDXL_INPAINT),
        (_keys("conditioner.embedders.0.model."), mt.SDXL_REFINER),
        (_keys(SD1_TE, in_channels=8), mt.UNKNOWN),
        ({"first_stage_model.decoder.conv_out.weight": (3, 128, 3, 3)}, mt.UNKNOWN),  # a VAE
        ({"lora_unet_down_blocks_0.lora_down.weight": (4, 320)}, mt.UNKNOWN),  # a LoRA
    ],
)
def test_detect_model_type_from_keys(keys, expected):
    assert mt.detect_model_type(keys) == expected


def test_sd2_v_prediction_from_yaml_and_name(tmp_path):
    keys = _keys(SD2_TE)
    assert mt.detect_model_type(keys, path=tmp_path / "v2-1_768-ema-pruned.safetensors") == mt.SD2_V
    assert mt.detect_model_type(keys, path=tmp_path / "sd21-v.safetensors") == mt.SD2_V
    assert mt.detect_model_type(keys, path=tmp_path / "v2-1_512-ema-pruned.safetensors") == mt.SD2
    assert mt.detect_model_type(keys, path=tmp_path / "model-v2.safetensors") == mt.SD2
    (tmp_path / "mine.yaml").write_text('model:\n  params:\n    parameterization: "v"\n    linear_start: 0.00085\n')
    assert mt.detect_model_type(keys, path=tmp_path / "mine.safetensors") == mt.SD2_V
    # A yaml without parameterization means epsilon, even when the name says 768.
    (tmp_path / "x-768.yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")
    assert mt.detect_model_type(keys, path=tmp_path / "x-768.safetensors") == mt.SD2


# --------------------------------------------------------------------------- unsupported files


def _small_keys(te_prefix: str, in_channels: int = 4) -> dict[str, tuple[int, ...]]:
    """Just enough key names to look like a checkpoint of a family (tiny shapes)."""
    return {
        f"{_UNET}input_blocks.0.0.weight": (4, in_channels, 3, 3),
        "first_stage_model.decoder.conv_out.weight": (3, 4, 3, 3),
        f"{te_prefix}position_embedding.weight": (77, 4),
    }


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"first_stage_model.decoder.conv_out.weight": (3, 4, 3, 3)}, "not a Stable Diffusion"),
        # Recognised as an SDXL refiner / SDXL inpainting file, but its weights do not fit the real configs.
        (_small_keys("conditioner.embedders.0.model."), "diffusers could not load it"),
        ({**_small_keys(SDXL_TE1), **_small_keys(SDXL_TE2, in_channels=9)}, "diffusers could not load it"),
    ],
)
def test_unsupported_model_types_raise(tmp_path, cache_dir, keys, message):
    path = _write_fake(tmp_path / "fake.safetensors", keys)
    with pytest.raises(UnsupportedCheckpoint, match=message):
        load_pipeline(path, cache_dir=cache_dir)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.safetensors", b"this is not a checkpoint at all" * 10),
        ("empty.safetensors", b""),
        ("short.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{}"),
        ("garbage.ckpt", b"\x80\x04not a pickle"),
        ("model.gguf", b"GGUF"),
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_garbage_files_raise(tmp_path, cache_dir, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnsupportedCheckpoint):
        load_pipeline(path, cache_dir=cache_dir)


def test_missing_file_raises(tmp_path, cache_dir):
    with pytest.raises(UnsupportedCheckpoint, match="no such"):
        load_pipeline(tmp_path / "nope.safetensors", cache_dir=cache_dir)


class _TrainingState:  # stands in for the pytorch_lightning objects old .ckpt files carry
    pass


def test_ckpt_with_pickled_objects_raises(tmp_path, cache_dir):
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(1)}, "callbacks": _TrainingState()}, path,
               pickle_module=pickle)
    with pytest.raises(UnsupportedCheckpoint, match="convert it to .safetensors|Convert it to .safetensors"):
        load_pipeline(path, cache_dir=cache_dir)


def test_ckpt_header_reads_nested_state_dict(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)},
                "global_step": 10}, path)
    header = read_checkpoint_header(path)
    assert header.shapes == {"model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3)}
    assert header.metadata == {}


def test_bad_sdapi_metadata_raises(tmp_path, cache_dir):
    keys = {f"{_UNET}input_blocks.0.0.weight": (4, 4, 3, 3)}
    path = _write_fake(tmp_path / "meta.safetensors", keys, {DIFFUSERS_CONFIG_KEY: json.dumps({"format": "other/9"})})
    with pytest.raises(UnsupportedCheckpoint, match="unknown format"):
        load_pipeline(path, cache_dir=cache_dir)


# --------------------------------------------------------------------------- shipped configs


def test_shipped_tokenizer_is_the_real_clip_vocab():
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["a</w>"] == 320 and vocab["photo</w>"] == 1125


def _meta_params(model_type: str):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = CONFIGS_DIR / model_type
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
    return unet, vae, te


def _millions(model) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


@pytest.mark.parametrize(
    ("model_type", "unet_m", "te_m", "diffusers_type", "prediction"),
    [
        ("sd15", 859.5, 123.1, "v1", "epsilon"),
        ("sd2", 865.9, 340.4, "v2", "epsilon"),
        ("sd2-v", 865.9, 340.4, "v2", "v_prediction"),
    ],
)
def test_shipped_configs_param_counts(tmp_path, model_type, unet_m, te_m, diffusers_type, prediction):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type
    from transformers import CLIPTokenizer

    from sdapi.engine.ldm_layout import unet_to_ldm

    unet, vae, te = _meta_params(model_type)
    assert (_millions(unet), _millions(vae), _millions(te)) == (unet_m, 83.7, te_m)
    # Our converter on the real topology gives keys diffusers' own detector recognises.
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    assert infer_diffusers_model_type(ldm) == diffusers_type
    scheduler = json.loads((CONFIGS_DIR / model_type / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == prediction and scheduler["clip_sample"] is False
    config_dir = materialize_config_dir(config_files_for_type(model_type), tmp_path / model_type)
    tok = CLIPTokenizer.from_pretrained(config_dir / "tokenizer")
    assert tok("a photo of").input_ids == [49406, 320, 1125, 539, 49407]
    assert tok.pad_token == ("<|endoftext|>" if model_type == "sd15" else "!")
    index = json.loads((config_dir / "model_index.json").read_text())
    assert all(index[k] == [None, None] for k in ("safety_checker", "feature_extractor", "image_encoder"))
    assert math.isclose(json.loads((config_dir / "vae" / "config.json").read_text())["scaling_factor"], 0.18215)


@pytest.mark.parametrize(("model_type", "base"), [(mt.SD15_INPAINT, mt.SD15), (mt.SD2_INPAINT, mt.SD2)])
def test_inpainting_types_get_their_base_config_with_a_9_channel_unet(model_type, base):
    files, base_files = config_files_for_type(model_type), config_files_for_type(base)
    assert json.loads(files["unet/config.json"])["in_channels"] == 9
    assert json.loads(base_files["unet/config.json"])["in_channels"] == 4
    assert {k: v for k, v in files.items() if k != "unet/config.json"} == {
        k: v for k, v in base_files.items() if k != "unet/config.json"}
