"""``benchmarks/gpu_throughput.py``: its smoke mode runs end to end on CPU, and its full-size models have the
parameter counts of SD 1.5's and SDXL's UNets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_throughput.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_mode_reports_both_models(script, tmp_path):
    out = tmp_path / "result.json"
    assert script.main(["--smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["device"] == "cpu" and set(report["models"]) == {"sd15", "sdxl"}
    for result in report["models"].values():
        assert result["size"] == 64 and result["steps"] == 1 and result["it_per_s"] > 0
        assert "fraction_of_peak" not in result  # a shrunk model's FLOPs are not the published ones
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"]


@pytest.mark.parametrize("name, millions", [("sd15", 859.5), ("sdxl", 2567.5)])
def test_full_size_configs_have_the_real_unets_parameter_counts(script, name, millions):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(script.unet_config(name, smoke=False))
    assert sum(p.numel() for p in unet.parameters()) / 1e6 == pytest.approx(millions, abs=0.5)


def test_peak_is_the_given_one_or_a_known_gpus(script):
    assert script.peak_tflops(500.0, "NVIDIA H200") == 500.0
    assert script.peak_tflops(None, "NVIDIA H200") == pytest.approx(989.4)
    assert script.peak_tflops(None, "Some Future GPU") is None and script.peak_tflops(None, None) is None
