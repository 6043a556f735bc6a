"""Later A1111's schedule types: the table row by row, the sigma formulas, and how a request's sampler name and
``scheduler`` field resolve over v1.2.1's sampler table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdapi.engine.errors import UnknownSampler
from sdapi.engine.sampling.schedulers import SCHEDULERS, resolve_sampler, scheduler_items, split_scheduler_suffix
from sdapi.engine.sampling.schedules import a1111_sigmas, model_schedule, schedule_type_sigmas

# A1111 v1.10.1's /schedulers, in order: (name, label, aliases, default_rho, need_inner_model).
V1_10_SCHEDULERS = [
    ("automatic", "Automatic", None, -1.0, False),
    ("uniform", "Uniform", None, -1.0, True),
    ("karras", "Karras", None, 7.0, False),
    ("exponential", "Exponential", None, -1.0, False),
    ("polyexponential", "Polyexponential", None, 1.0, False),
    ("sgm_uniform", "SGM Uniform", ["SGMUniform"], -1.0, True),
    ("kl_optimal", "KL Optimal", None, -1.0, False),
    ("align_your_steps", "Align Your Steps", None, -1.0, False),
    ("simple", "Simple", None, -1.0, True),
    ("normal", "Normal", None, -1.0, True),
    ("ddim", "DDIM", None, -1.0, True),
    ("beta", "Beta", None, -1.0, True),
]


@pytest.mark.parametrize("index", range(len(V1_10_SCHEDULERS)))
def test_scheduler_rows_match_a1111_v1_10(index):
    name, label, aliases, rho, inner = V1_10_SCHEDULERS[index]
    assert scheduler_items()[index] == {"name": name, "label": label, "aliases": aliases, "default_rho": rho,
                                        "need_inner_model": inner}


@pytest.fixture(scope="module")
def schedule():
    return model_schedule({"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                           "num_train_timesteps": 1000})


TYPES = [s.name for s in SCHEDULERS if s.name != "automatic"]


@pytest.mark.parametrize("name", TYPES)
def test_every_schedule_type_descends_from_the_top_of_the_model_range(schedule, name):
    sigmas = schedule_type_sigmas(schedule, name, 12)
    # A1111's "DDIM" type takes every (1000 // n)-th level, which is more than n of them when n does not divide 1000.
    assert sigmas.dtype == torch.float32 and sigmas.shape == ((14,) if name == "ddim" else (13,))
    assert bool((sigmas[:-1] > sigmas[1:]).all())
    if name not in ("align_your_steps", "simple", "ddim"):  # fixed tables / picked model levels
        assert sigmas[0].item() == pytest.approx(schedule.sigma_max, rel=1e-4)
    expected_last = schedule.sigma_min if name == "kl_optimal" else 0.0  # A1111's KL Optimal has no trailing 0
    assert sigmas[-1].item() == pytest.approx(expected_last, abs=1e-6)


def test_uniform_and_karras_are_v1_2_1_schedules(schedule):
    assert torch.equal(schedule_type_sigmas(schedule, "uniform", 10), a1111_sigmas(schedule, 10))
    assert torch.equal(schedule_type_sigmas(schedule, "karras", 10), a1111_sigmas(schedule, 10, karras=True))


def test_exponential_is_log_linear(schedule):
    sigmas = schedule_type_sigmas(schedule, "exponential", 6)[:-1].double()
    ratios = sigmas[1:] / sigmas[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-5)
    assert sigmas[-1].item() == pytest.approx(schedule.sigma_min, rel=1e-5)


def test_polyexponential_at_rho_1_is_exponential(schedule):
    assert torch.allclose(schedule_type_sigmas(schedule, "polyexponential", 7),
                          schedule_type_sigmas(schedule, "exponential", 7), rtol=1e-5)


def test_align_your_steps_is_nvidias_table_at_its_own_length(schedule):
    sd15 = schedule_type_sigmas(schedule, "align_your_steps", 11)
    assert sd15.tolist() == pytest.approx([14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152,
                                           0.029, 0.0], rel=1e-6)
    assert schedule_type_sigmas(schedule, "align_your_steps", 11, sdxl=True)[1].item() == pytest.approx(6.315)
    interpolated = schedule_type_sigmas(schedule, "align_your_steps", 4)
    assert interpolated[0].item() == pytest.approx(14.615) and interpolated[3].item() == pytest.approx(0.029)


def test_simple_and_ddim_pick_model_levels(schedule):
    levels = set(schedule.sigmas.tolist())
    for name in ("simple", "ddim"):
        assert set(schedule_type_sigmas(schedule, name, 10)[:-1].tolist()) <= levels
    assert schedule_type_sigmas(schedule, "simple", 10)[0].item() == schedule.sigmas[-1].item()
    assert schedule_type_sigmas(schedule, "ddim", 10)[-2].item() == schedule.sigmas[1].item()


def test_normal_ends_at_sigma_min_and_sgm_uniform_before_it(schedule):
    normal = schedule_type_sigmas(schedule, "normal", 8)
    sgm = schedule_type_sigmas(schedule, "sgm_uniform", 8)
    assert normal[-2].item() == pytest.approx(schedule.sigma_min, rel=1e-4)
    assert sgm[-2].item() > normal[-2].item()


def test_beta_follows_the_beta_quantiles(schedule):
    from scipy import stats

    sigmas = schedule_type_sigmas(schedule, "beta", 5)
    q = stats.beta.ppf(0.75, 0.6, 0.6)
    expected = schedule.sigma_min + q * (schedule.sigma_max - schedule.sigma_min)
    assert sigmas[1].item() == pytest.approx(expected, rel=1e-6)
    assert not math.isnan(float(np.asarray(sigmas).sum()))


# (sampler_name, scheduler) -> (sampler row, schedule type, warns)
RESOLUTIONS = {
    ("Euler", None): ("Euler", None, False),
    ("Euler", "automatic"): ("Euler", None, False),  # webuiapi's default
    ("Euler", "Uniform"): ("Euler", None, False),
    ("Euler", "Exponential"): ("Euler", "exponential", False),
    ("Euler", "karras"): ("Euler", "karras", False),  # no v1.2.1 row for it
    ("DPM++ 2M", "Karras"): ("DPM++ 2M Karras", None, False),  # the v1.2.1 row, so the infotext is v1.2.1's
    ("DPM++ 2M Karras", "Exponential"): ("DPM++ 2M Karras", None, False),  # the name's suffix wins (v1.10)
    ("DPM++ 2M Karras", "Uniform"): ("DPM++ 2M Karras", None, False),
    ("Euler Exponential", None): ("Euler", "exponential", False),
    ("Euler a SGMUniform", None): ("Euler a", "sgm_uniform", False),
    ("Euler", "Sigmoid"): ("Euler", None, True),
    ("DDIM", "Karras"): ("DDIM", None, True),
    ("DPM fast", "Exponential"): ("DPM fast", None, True),
}


@pytest.mark.parametrize("request_pair", RESOLUTIONS, ids=str)
def test_sampler_and_schedule_type_resolution(request_pair):
    row, schedule_type, warns = RESOLUTIONS[request_pair]
    choice = resolve_sampler(*request_pair)
    assert (choice.sampler.name, choice.schedule_type, choice.warning is not None) == (row, schedule_type, warns)


def test_unknown_samplers_stay_v1_2_1_404s():
    for name in ("Euler Turbo", "Nope Karras", None):
        with pytest.raises(UnknownSampler):
            resolve_sampler(name, "Karras")
    assert split_scheduler_suffix("Euler") == ("Euler", None)
