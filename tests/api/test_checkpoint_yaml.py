"""A ``<checkpoint>.yaml`` beside a checkpoint changes how it is built, through HTTP (A1111 honours such files)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.conftest import decode_png, txt2img

YAML = """model:
  params:
    scale_factor: 0.3
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
      params:
        version: models/Stable-diffusion/my-clip
"""


@pytest.fixture(scope="module")
def yaml_client(data_dir, tmp_path_factory):
    """Two copies of one demo checkpoint, one with a yaml (VAE scale, CLIP folder with another activation)."""
    root = tmp_path_factory.mktemp("yaml-data")
    models = root / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    source = data_dir / "models" / "Stable-diffusion" / "demo-sd15.safetensors"
    shutil.copy(source, models / "plain.safetensors")
    shutil.copy(source, models / "withyaml.safetensors")
    (models / "withyaml.yaml").write_text(YAML, encoding="utf-8")
    from sdapi.engine.checkpoint_loader import DIFFUSERS_CONFIG_KEY, read_checkpoint_header

    config = json.loads(read_checkpoint_header(source).metadata[DIFFUSERS_CONFIG_KEY])["text_encoder"]
    (models / "my-clip").mkdir()
    (models / "my-clip" / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}), encoding="utf-8")
    settings = Settings(data_dir=root, cache_dir=tmp_path_factory.mktemp("yaml-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def generate(client, checkpoint: str) -> np.ndarray:
    body = txt2img(client, seed=11, steps=3, override_settings={"sd_model_checkpoint": checkpoint})
    return np.asarray(decode_png(body["images"][0])).astype(int)


def test_the_yaml_is_listed_and_applied(yaml_client):
    models = {m["model_name"]: m for m in yaml_client.get("/sdapi/v1/sd-models").json()}
    assert models["withyaml"]["config"].endswith("withyaml.yaml") and models["plain"]["config"] is None
    plain, with_yaml = generate(yaml_client, "plain"), generate(yaml_client, "withyaml")
    assert np.abs(plain - with_yaml).mean() > 3
    assert np.array_equal(plain, generate(yaml_client, "plain"))
