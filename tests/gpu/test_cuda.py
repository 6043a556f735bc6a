"""CUDA-only checks: fp16 by default, SDPA or xformers attention, generation on the device.

Skipped where there is no CUDA; run them on a GPU machine (``pytest -m gpu``).
"""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.conftest import decode_png

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("flags, dtype", [({}, torch.float16), ({"no_half": True}, torch.float32),
                                          ({"xformers": True}, torch.float16)])
def test_generation_on_cuda(tmp_path, data_dir, flags, dtype):
    settings = Settings(data_dir=data_dir, cache_dir=tmp_path, device="auto", **flags)
    with TestClient(create_app(settings)) as client:
        state = client.app.state.sdapi
        assert state.engine.runtime.device.type == "cuda" and state.engine.runtime.dtype == dtype
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "width": 64, "height": 64, "steps": 4,
                                                    "seed": 1, "sampler_name": "DPM++ 2M Karras", "batch_size": 2})
        assert r.status_code == 200, r.text
        assert len(r.json()["images"]) == 2 and decode_png(r.json()["images"][0]).size == (64, 64)
        assert json.loads(r.json()["info"])["all_seeds"] == [1, 2]
