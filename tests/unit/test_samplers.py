"""The sampler registry, row by row."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from sdapi.engine.errors import UnknownSampler
from sdapi.engine.sampling.conds import schedule_length
from sdapi.engine.sampling.core import _COMPVIS_RUNNERS
from sdapi.engine.sampling.kdiffusion import KDIFFUSION_FUNCTIONS
from sdapi.engine.sampling.registry import SAMPLERS, effective_steps, find_sampler, sampler_items

RECORDED = json.loads((Path(__file__).parents[1] / "fixtures/a1111-v1.2.1/get-samplers.json").read_text())["response"]

# A1111 v1.2.1's samplers_k_diffusion: name -> k-diffusion function (the CompVis rows run ldm's samplers).
A1111_FUNCTIONS = {
    "Euler a": "euler_ancestral", "Euler": "euler", "LMS": "lms", "Heun": "heun", "DPM2": "dpm_2",
    "DPM2 a": "dpm_2_ancestral", "DPM++ 2S a": "dpmpp_2s_ancestral", "DPM++ 2M": "dpmpp_2m", "DPM++ SDE": "dpmpp_sde",
    "DPM fast": "dpm_fast", "DPM adaptive": "dpm_adaptive", "LMS Karras": "lms", "DPM2 Karras": "dpm_2",
    "DPM2 a Karras": "dpm_2_ancestral", "DPM++ 2S a Karras": "dpmpp_2s_ancestral", "DPM++ 2M Karras": "dpmpp_2m",
    "DPM++ SDE Karras": "dpmpp_sde", "DDIM": "ddim", "PLMS": "plms", "UniPC": "unipc",
}


def test_listing_equals_a1111_recording():
    assert sampler_items() == RECORDED


@pytest.mark.parametrize("spec", SAMPLERS, ids=lambda s: s.name)
def test_row_runs_a1111s_function_with_its_arguments(spec):
    assert spec.function == A1111_FUNCTIONS[spec.name]
    if not spec.kdiffusion:
        assert spec.function in _COMPVIS_RUNNERS and spec.adjust_steps
        return
    parameters = inspect.signature(KDIFFUSION_FUNCTIONS[spec.function]).parameters
    # A1111 passes eta to every function that takes it, churn to Euler/Heun/DPM2, a sigma range to DPM fast/adaptive.
    assert spec.ancestral == ("eta" in parameters)
    assert spec.churn == ("s_churn" in parameters)
    assert spec.sigma_range == ("sigma_min" in parameters)
    assert not spec.adjust_steps


@pytest.mark.parametrize("name", ["euler a", "k_euler_a", "Euler A", "0", "", None])
def test_lookup_is_exact_and_case_sensitive(name):
    with pytest.raises(UnknownSampler, match="^Sampler not found$"):
        find_sampler(name)


@pytest.mark.parametrize("name, steps, expected", [
    ("DDIM", 3, 4), ("PLMS", 3, 4), ("UniPC", 3, 4), ("DDIM", 8, 8), ("DDIM", 20, 20), ("DDIM", 1, 1),
    ("Euler", 3, 3), ("UniPC", 1, 4), ("UniPC", 2, 4),
])
def test_effective_steps_follow_a1111s_fixup(name, steps, expected):
    assert effective_steps(find_sampler(name), steps) == expected


@pytest.mark.parametrize("name, doubled", [
    ("Heun", True), ("DPM2", True), ("DPM2 a", True), ("DPM++ 2S a", True), ("DPM++ 2S a Karras", True),
    ("DPM++ SDE", True), ("DPM++ SDE Karras", True), ("DPM2 Karras", False), ("DPM2 a Karras", False),
    ("Euler", False), ("DPM fast", False), ("DPM adaptive", False), ("DDIM", False),
])
def test_prompt_schedules_are_doubled_where_a1111_v121_doubles_them(name, doubled):
    # v1.2.1 tests the first alias against a list that misses the Karras DPM2 variants.
    assert schedule_length(find_sampler(name), 10) == (20 if doubled else 10)
