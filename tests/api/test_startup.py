"""Start-up on an empty models folder (built-in demo), refresh, and the no-checkpoint case."""

from __future__ import annotations

import logging
import shutil

from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings


def test_empty_models_folder_serves_the_builtin_demo(tmp_path, caplog, data_dir):
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="sdapi"), TestClient(create_app(settings)) as client:
        models = client.get("/sdapi/v1/sd-models").json()
        assert [m["model_name"] for m in models] == ["demo-sd15"]
        assert models[0]["title"] == f"demo-sd15.safetensors [{models[0]['hash']}]"
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1})
        assert r.status_code == 200 and len(r.json()["images"]) == 1
        warnings = [r for r in caplog.records if "demo checkpoint" in r.getMessage()]
        assert len(warnings) == 1

        # A real checkpoint dropped into the folder replaces the demo after a refresh, as in A1111.
        target = settings.models_dir / "sub"
        target.mkdir(parents=True)
        shutil.copy(data_dir / "models/Stable-diffusion/demo-sd15-b.safetensors", target / "mine.safetensors")
        assert client.post("/sdapi/v1/refresh-checkpoints").json() is None
        assert [m["title"] for m in client.get("/sdapi/v1/sd-models").json()] == ["sub/mine.safetensors"]


def test_no_checkpoint_and_no_demo_is_a_clear_error(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", demo_when_empty=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/sdapi/v1/sd-models").json() == []
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1})
        assert r.status_code == 500
        body = r.json()
        assert body["error"] == "NoCheckpointAvailable" and "No checkpoints found" in body["errors"]


def test_unloadable_checkpoint_is_reported_not_fatal(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / "broken.safetensors").write_bytes(b"not a safetensors file")
    with TestClient(create_app(settings)) as client:
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1})
        assert r.status_code == 500 and r.json()["error"] == "UnsupportedCheckpoint"
        assert client.get("/sdapi/v1/samplers").status_code == 200
