"""The sampler registry, row by row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("spec", SAMPLERS, ids=lambda s: s.name)
def test_row_builds_its_scheduler_with_its_options(spec):
    scheduler = build_scheduler(spec, SD15_SCHEDULER, seed=42)
    assert type(scheduler).__name__ == spec.scheduler
    for key, value in spec.kwargs.items():
        assert scheduler.config[key] == value, key
    # The checkpoint's noise schedule is kept.
    assert scheduler.config["beta_schedule"] == "scaled_linear" and scheduler.config["beta_end"] == 0.012
    scheduler.set_timesteps(8)
    assert len(scheduler.timesteps) >= 8


@pytest.mark.parametrize("spec", SAMPLERS, ids=lambda s: s.name)
def test_row_flags_agree_with_a1111(spec):
    karras = spec.options.get("scheduler") == "karras"
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
