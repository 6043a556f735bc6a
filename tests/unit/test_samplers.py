"""The sampler registry, row by row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdapi.engine.kdiffusion import KDIFFUSION_LOOPS
from sdapi.engine.prompt_conds import schedule_length
from sdapi.engine.samplers import SAMPLERS, build_scheduler, effective_steps, find_sampler, sampler_items
from sdapi.errors import NotFound

RECORDED = json.loads((Path(__file__).parents[1] / "fixtures/a1111-v1.2.1/get-samplers.json").read_text())["response"]

SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
}


def test_listing_equals_a1111_recording():
    assert sampler_items() == RECORDED


SCHEDULER_ROWS = [s for s in SAMPLERS if s.kdiffusion_loop is None]
OWN_LOOP_ROWS = [s for s in SAMPLERS if s.kdiffusion_loop is not None]


@pytest.mark.parametrize("spec", SCHEDULER_ROWS, ids=lambda s: s.name)
def test_row_builds_its_scheduler_with_its_options(spec):
    scheduler = build_scheduler(spec, SD15_SCHEDULER, seed=42)
    assert type(scheduler).__name__ == spec.scheduler
    for key, value in spec.kwargs.items():
        assert scheduler.config[key] == value, key
    # The checkpoint's noise schedule is kept.
    assert scheduler.config["beta_schedule"] == "scaled_linear" and scheduler.config["beta_end"] == 0.012
    scheduler.set_timesteps(8)
    assert len(scheduler.timesteps) >= 8


def test_rows_without_a_diffusers_equivalent_run_our_own_kdiffusion_loops():
    assert {s.name: s.kdiffusion_loop for s in OWN_LOOP_ROWS} == {
        "DPM++ 2S a": "dpmpp_2s_ancestral", "DPM++ 2S a Karras": "dpmpp_2s_ancestral",
        "DPM fast": "dpm_fast", "DPM adaptive": "dpm_adaptive"}
    for spec in OWN_LOOP_ROWS:
        assert spec.scheduler is None and spec.kwargs == {} and spec.kdiffusion and spec.ancestral
        assert spec.kdiffusion_loop in KDIFFUSION_LOOPS
        with pytest.raises(ValueError, match="own k-diffusion loop"):
            build_scheduler(spec, SD15_SCHEDULER, seed=1)


@pytest.mark.parametrize("spec", SAMPLERS, ids=lambda s: s.name)
def test_row_flags_agree_with_a1111(spec):
    karras = spec.options.get("scheduler") == "karras"
    if spec.kdiffusion_loop is None:
        assert karras == bool(spec.kwargs.get("use_karras_sigmas"))
    assert spec.kdiffusion == bool(spec.aliases)  # A1111's k-diffusion samplers are exactly the aliased ones
    if spec.kdiffusion:
        assert spec.kwargs.get("timestep_spacing", "linspace") == "linspace"
    else:
        assert spec.adjust_steps


def test_sde_rows_are_seeded_per_request():
    spec = find_sampler("DPM++ SDE")
    assert build_scheduler(spec, SD15_SCHEDULER, seed=7).config["noise_sampler_seed"] == 7


@pytest.mark.parametrize("name", ["euler a", "k_euler_a", "Euler A", "0", "", None])
def test_lookup_is_exact_and_case_sensitive(name):
    with pytest.raises(NotFound) as err:
        find_sampler(name)
    assert err.value.detail == "Sampler not found" and err.value.status_code == 404


@pytest.mark.parametrize("name, steps, expected", [
    ("DDIM", 3, 4), ("PLMS", 3, 4), ("UniPC", 3, 4), ("DDIM", 8, 8), ("DDIM", 20, 20), ("DDIM", 1, 1),
    ("Euler", 3, 3),
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
