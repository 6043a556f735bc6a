"""Device/dtype choice and the attention fallback."""

from __future__ import annotations

import logging

import pytest
import torch

from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.runtime import Runtime, choose_runtime, enable_attention


def test_cpu_runtime_is_fp32_and_ignores_xformers():
    runtime = choose_runtime("cpu", xformers=True)
    assert runtime == Runtime(torch.device("cpu"), torch.float32, False)


def test_cuda_requested_without_cuda_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RuntimeError, match="CUDA"):
        choose_runtime("cuda")


def test_xformers_failure_falls_back_to_sdpa(caplog):
    pipe = build_tiny_sd15_pipeline(seed=3)
    with caplog.at_level(logging.WARNING, logger="sdapi"):
        used = enable_attention(pipe, Runtime(torch.device("cpu"), torch.float32, xformers=True))
    assert used == "sdpa" and "xformers unavailable" in caplog.text
    image = pipe("a cat", num_inference_steps=2, height=64, width=64, output_type="np").images[0]
    assert image.shape == (64, 64, 3)
