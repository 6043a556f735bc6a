"""Shared fixtures: tiny demo checkpoints built by code, and one app over them for the whole session.

Everything runs in one process on CPU with 2 threads (the thread count changes low bits of images).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from PIL import Image

torch.set_num_threads(2)

FIXTURES = Path(__file__).parent / "fixtures"
RECORDINGS = FIXTURES / "a1111-v1.2.1"
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """An A1111-style root with the two demo checkpoints in ``models/Stable-diffusion``."""
    from sdapi.engine.demo_files import write_demo_models

    root = tmp_path_factory.mktemp("sdapi-data")
    write_demo_models(root)
    return root


@pytest.fixture(scope="session")
def settings(data_dir, tmp_path_factory):
    from sdapi.settings import Settings

    return Settings(data_dir=data_dir, cache_dir=tmp_path_factory.mktemp("sdapi-cache"), num_threads=2)


@pytest.fixture(scope="session")
def client(settings):
    """A TestClient over one app for the session (models load once)."""
    from fastapi.testclient import TestClient

    from sdapi.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture()
def state(client):
    return client.app.state.sdapi


def decode_png(b64: str) -> Image.Image:
    """Decode a response image (bare base64, no data: prefix)."""
    assert not b64.startswith("data:")
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def load_recording(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text(encoding="utf-8"))


def txt2img(client, **payload) -> dict:
    """POST a small txt2img (64x64, 2 steps unless given) and return the JSON body, asserting 200."""
    body = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 2, **payload}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="session")
def fresh_data_dir(tmp_path_factory):
    """Factory for throw-away data dirs holding copies of the demo checkpoints."""

    def make(data_dir_src: Path) -> Path:
        root = tmp_path_factory.mktemp("sdapi-copy")
        shutil.copytree(data_dir_src / "models", root / "models")
        return root

    return make
