"""A1111's noise schedules: k-diffusion's sigmas, ldm's DDIM timesteps and A1111's UniPC grid.

Expected numbers were computed with k-diffusion 5b3af030 (the commit A1111 v1.2.1 pins) over an ldm-style
``alphas_cumprod`` buffer.
"""

from __future__ import annotations

import pytest
import torch

from sdapi.engine.sampling.schedules import (
    a1111_sigmas,
    ddim_schedule,
    discard_next_to_last,
    karras_sigmas,
    ldm_alphas_cumprod,
    model_schedule,
    unipc_times,
)

SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
        "prediction_type": "epsilon", "steps_offset": 1, "timestep_spacing": "leading", "clip_sample": False,
        "set_alpha_to_one": False, "skip_prk_steps": True, "trained_betas": None}


@pytest.fixture(scope="module")
def sched():
    return model_schedule(SD15)


def approx(values, rel=1e-6, abs=1e-6):
    return pytest.approx(values, rel=rel, abs=abs)


# --- the schedule ---------------------------------------------------------------------------------------------

def test_model_sigmas_of_sd15(sched):
    assert sched.sigmas.dtype == torch.float32 and sched.sigmas.shape == (1000,)
    assert sched.sigma_min == pytest.approx(0.0291675, rel=1e-5)
    assert sched.sigma_max == pytest.approx(14.614642, rel=1e-6)
    assert bool((sched.sigmas[1:] > sched.sigmas[:-1]).all())
    assert torch.equal(sched.log_sigmas, sched.sigmas.log())


def test_ldm_betas_are_float64_sqrt_linear():
    ac = ldm_alphas_cumprod(0.00085, 0.012)
    assert ac.dtype.name == "float64" and ac.shape == (1000,)
    assert ac[0] == pytest.approx(1 - 0.00085, rel=1e-12)
    assert 1 - ac[1] / ac[0] == pytest.approx(((0.00085 ** 0.5) + (0.012 ** 0.5 - 0.00085 ** 0.5) / 999) ** 2,
                                              rel=1e-9)


def test_schedules_are_cached_per_config_and_precision(sched):
    assert model_schedule(dict(SD15)) is sched
    half = model_schedule(SD15, half=True)
    assert half is not sched and half.sigmas.dtype == torch.float16
    # A1111 v1.2.1 in half precision downcast alphas_cumprod with the model: sigma_min becomes 2**-5.
    assert half.sigma_min == 0.03125 and half.sigma_max == 14.609375


@pytest.mark.parametrize("config", [{**SD15, "rescale_betas_zero_snr": True},
                                    {**SD15, "beta_schedule": "squaredcos_cap_v2"}])
def test_schedules_a1111_cannot_have_are_not_rebuilt(config):
    assert model_schedule(config) is None


def test_default_schedule(sched):
    sigmas = a1111_sigmas(sched, 8)
    assert sigmas.dtype == torch.float32
    assert sigmas.tolist() == approx([14.614643, 6.677999, 3.522057, 2.060642, 1.276832, 0.79126, 0.439666,
                                      0.029168, 0.0], rel=1e-5)
    for n in (1, 2, 20, 150):
        s = a1111_sigmas(sched, n)
        assert len(s) == n + 1 and s[-1] == 0
        assert s[0].item() == pytest.approx(sched.sigma_max, rel=1e-6)
        assert bool((s[1:] < s[:-1]).all())
        # t = linspace(999, 0, n): the last non-zero sigma is the model's smallest.
        assert s[-2].item() == pytest.approx(sched.sigma_max if n == 1 else sched.sigma_min, rel=1e-6)


def test_karras_schedule(sched):
    sigmas = a1111_sigmas(sched, 8, karras=True)
    assert sigmas.tolist() == approx([14.614643, 7.902944, 4.027744, 1.910362, 0.828872, 0.321122, 0.107199,
                                      0.029168, 0.0], rel=1e-5)
    s = a1111_sigmas(sched, 20, karras=True)
    assert len(s) == 21 and s[-1] == 0
    assert s[0].item() == pytest.approx(sched.sigma_max, rel=1e-6)
    assert s[-2].item() == pytest.approx(sched.sigma_min, rel=1e-6)
    rho = 7.0
    mid = (sched.sigma_max ** (1 / rho) + 0.5 * (sched.sigma_min ** (1 / rho) - sched.sigma_max ** (1 / rho))) ** rho
    assert karras_sigmas(3, sched.sigma_min, sched.sigma_max)[1].item() == pytest.approx(mid, rel=1e-6)


def test_discard_penultimate(sched):
    for karras in (False, True):
        for n in (1, 8, 20):
            s = a1111_sigmas(sched, n, karras=karras, discard_penultimate=True)
            full = a1111_sigmas(sched, n + 1, karras=karras)
            assert len(s) == n + 1
            assert torch.equal(s, torch.cat([full[:-2], full[-1:]]))
            assert torch.equal(discard_next_to_last(full), s)
    assert a1111_sigmas(sched, 8, discard_penultimate=True).tolist() == approx(
        [14.614643, 7.301982, 4.086081, 2.495967, 1.61558, 1.071159, 0.69515, 0.399701, 0.0], rel=1e-5)


def test_sigma_to_t(sched):
    assert torch.equal(sched.sigma_to_t(sched.sigmas), torch.arange(1000, dtype=torch.float32))
    assert sched.sigma_to_t(torch.tensor([0.0])).item() == 0.0
    t = torch.linspace(999, 0, 20)
    assert sched.sigma_to_t(sched.t_to_sigma(t)).tolist() == approx(t.tolist(), rel=1e-4, abs=2e-3)
    # Karras sigmas fall between training timesteps: the UNet gets A1111's fractional t, not a rounded one.
    t = sched.sigma_to_t(a1111_sigmas(sched, 8, karras=True))
    assert t.tolist() == approx([999.0, 889.5464, 745.8676, 549.017, 298.6582, 89.9427, 12.0011, 0.0, 0.0],
                                rel=1e-5, abs=1e-3)


def test_unipc_time_uniform_grid(sched):
    times = unipc_times(sched, 8)
    sigmas, t = times.kdiffusion_sigmas, times.model_t
    assert t.tolist() == approx([999.0, 874.125, 749.25, 624.375, 499.5, 374.625, 249.75, 124.875, 0.0], rel=1e-5,
                                abs=1e-3)
    assert sigmas[0].item() == pytest.approx(sched.sigma_max, rel=1e-5)
    assert sigmas[-1].item() == pytest.approx(sched.sigma_min, rel=1e-5)  # UniPC stops at t = 1/1000, not 0
    # Between keypoints log(alpha) is interpolated, not log(sigma): close to, but not, k-diffusion's sigma.
    assert sigmas[1].item() == pytest.approx(sched.t_to_sigma(t[1:2]).item(), rel=1e-3)


    # lambda_t = log(alpha_t / sigma_t): the grid's half log-SNR.
    assert times.lam.tolist() == approx((times.alpha / times.sigma).log().tolist(), rel=1e-5)


@pytest.mark.parametrize("steps, count, last", [(8, 8, 876), (20, 20, 951), (30, 31, 991), (1, 1, 1)])
def test_ddim_timesteps_are_ldms_uniform_ones(sched, steps, count, last):
    # ldm takes range(0, 1000, 1000 // steps) + 1, which has more entries than steps when 1000 is not a multiple.
    ddim = ddim_schedule(sched, steps)
    assert len(ddim.timesteps) == count and ddim.timesteps[0] == 1 and ddim.timesteps[-1] == last
    assert torch.equal(ddim.alphas, sched.alphas_cumprod[list(ddim.timesteps)])
    assert ddim.alphas_prev[0] == sched.alphas_cumprod[0]
    assert torch.equal(ddim.alphas_prev[1:], ddim.alphas[:-1])
    assert torch.count_nonzero(ddim.sigmas) == 0  # eta 0: A1111's default eta_ddim


def test_ddim_eta_adds_ddims_noise_schedule(sched):
    ddim = ddim_schedule(sched, 10, eta=1.0)
    a, prev = ddim.alphas.double(), ddim.alphas_prev.double()
    expected = torch.sqrt((1 - prev) / (1 - a) * (1 - a / prev))
    assert ddim.sigmas.tolist() == approx(expected.tolist(), rel=1e-5)


def test_half_precision_schedules_hold_float16_values(sched):
    half = model_schedule(SD15, half=True)
    assert half.alphas_cumprod.dtype == torch.float16
    assert ddim_schedule(half, 8).alphas.dtype == torch.float32
    assert torch.equal(ddim_schedule(half, 8).alphas, half.alphas_cumprod[list(ddim_schedule(half, 8).timesteps)].float())
