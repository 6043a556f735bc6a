"""An ldm ``<checkpoint>.yaml`` beside a checkpoint, applied over its diffusers configs as A1111 would build it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdapi.engine.checkpoint_loader import (DIFFUSERS_CONFIG_KEY, UnsupportedCheckpoint, config_files_from_metadata,
                                            read_checkpoint_header, resolve_config_dir)
from sdapi.engine.ldm_yaml import (LdmYamlError, apply_ldm_yaml, beside, clip_folder, read_ldm_yaml,
                                   scheduler_updates)
from tests.conftest import SHARED

PARITY = SHARED / "fixtures" / "a1111-parity"
COMPONENTS = ("unet/config.json", "vae/config.json", "scheduler/scheduler_config.json", "text_encoder/config.json")


def loaded(files: dict[str, bytes], rel: str) -> dict:
    return json.loads(files[rel])


@pytest.mark.skipif(not (PARITY / "tiny-sd15.yaml").is_file(), reason="A1111 parity fixtures not available")
def test_the_parity_yaml_describes_the_same_model_as_the_checkpoint_metadata(tmp_path):
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    for name in ("tiny-sd15.safetensors", "tiny-sd15.yaml", "tiny-clip"):
        (models / name).symlink_to(PARITY / name)
    checkpoint = models / "tiny-sd15.safetensors"
    files = config_files_from_metadata(read_checkpoint_header(checkpoint).metadata[DIFFUSERS_CONFIG_KEY])
    applied = apply_ldm_yaml(files, beside(checkpoint), checkpoint)
    for rel in COMPONENTS:
        assert loaded(applied, rel) == loaded(files, rel), rel
    # version: models/Stable-diffusion/tiny-clip, resolved from the webui root (here: two folders up).
    assert clip_folder(read_ldm_yaml(beside(checkpoint)), checkpoint) == tmp_path / "models/Stable-diffusion/tiny-clip"


def test_model_params_map_to_the_scheduler():
    params = {"linear_start": 0.001, "linear_end": 0.02, "timesteps": 500, "beta_schedule": "sqrt_linear",
              "parameterization": "v", "unrelated": 1}
    assert scheduler_updates(params) == {"beta_start": 0.001, "beta_end": 0.02, "num_train_timesteps": 500,
                                         "beta_schedule": "linear", "prediction_type": "v_prediction"}
    assert scheduler_updates({"beta_schedule": "linear", "parameterization": "eps"}) == {
        "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}


def test_a_partial_yaml_changes_only_what_it_states(tmp_path, data_dir):
    checkpoint = data_dir / "models" / "Stable-diffusion" / "demo-sd15.safetensors"
    files = config_files_from_metadata(read_checkpoint_header(checkpoint).metadata[DIFFUSERS_CONFIG_KEY])
    yaml_path = tmp_path / "demo.yaml"
    yaml_path.write_text("model:\n  params:\n    scale_factor: 0.5\n    parameterization: v\n", encoding="utf-8")
    applied = apply_ldm_yaml(files, yaml_path, checkpoint)
    assert loaded(applied, "vae/config.json") == {**loaded(files, "vae/config.json"), "scaling_factor": 0.5}
    scheduler = loaded(applied, "scheduler/scheduler_config.json")
    assert scheduler == {**loaded(files, "scheduler/scheduler_config.json"), "prediction_type": "v_prediction"}
    assert applied["unet/config.json"] == files["unet/config.json"]
    assert applied["text_encoder/config.json"] == files["text_encoder/config.json"]


def test_clip_version_resolution(tmp_path):
    checkpoint = tmp_path / "models" / "Stable-diffusion" / "sub" / "m.safetensors"
    clip = tmp_path / "models" / "clips" / "mine"
    clip.mkdir(parents=True)
    (clip / "config.json").write_text("{}", encoding="utf-8")

    def config(version, target="ldm.modules.encoders.modules.FrozenCLIPEmbedder"):
        return {"model": {"params": {"cond_stage_config": {"target": target, "params": {"version": version}}}}}

    assert clip_folder(config("models/clips/mine"), checkpoint) == clip
    assert clip_folder(config(str(clip)), checkpoint) == clip
    assert clip_folder(config("openai/clip-vit-large-patch14"), checkpoint) is None
    assert clip_folder(config("models/clips/mine", "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder"),
                       checkpoint) is None


@pytest.mark.parametrize("text", ["model: [1, 2", "just a string\n", "other: {}\n"])
def test_an_unreadable_yaml_makes_the_checkpoint_unsupported(tmp_path, data_dir, text):
    source = data_dir / "models" / "Stable-diffusion" / "demo-sd15.safetensors"
    checkpoint = tmp_path / "demo.safetensors"
    checkpoint.symlink_to(source)
    (tmp_path / "demo.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(LdmYamlError):
        read_ldm_yaml(tmp_path / "demo.yaml")
    with pytest.raises(UnsupportedCheckpoint):
        resolve_config_dir(checkpoint, read_checkpoint_header(checkpoint), tmp_path / "cache")


def test_no_yaml_no_change(tmp_path, data_dir):
    checkpoint = data_dir / "models" / "Stable-diffusion" / "demo-sd15.safetensors"
    assert beside(checkpoint) is None
    config_dir = resolve_config_dir(checkpoint, read_checkpoint_header(checkpoint), tmp_path)
    assert not Path(config_dir).name.startswith("yaml-")


def test_a_local_clip_folder_supplies_the_text_encoder_and_tokenizer_files(tmp_path, data_dir):
    checkpoint = data_dir / "models" / "Stable-diffusion" / "demo-sd15.safetensors"
    files = config_files_from_metadata(read_checkpoint_header(checkpoint).metadata[DIFFUSERS_CONFIG_KEY])
    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "config.json").write_bytes(b'{"hidden_act": "gelu"}')
    (clip / "merges.txt").write_bytes(b"#version: 0.2\n")
    yaml_path = tmp_path / "m.yaml"
    yaml_path.write_text("model:\n  params:\n    cond_stage_config:\n      target: ldm.modules.encoders.modules."
                         f"FrozenCLIPEmbedder\n      params:\n        version: {clip}\n", encoding="utf-8")
    applied = apply_ldm_yaml(files, yaml_path, checkpoint)
    assert applied["text_encoder/config.json"] == b'{"hidden_act": "gelu"}'
    assert applied["tokenizer/merges.txt"] == b"#version: 0.2\n"
    assert applied["tokenizer/vocab.json"] == files["tokenizer/vocab.json"]
