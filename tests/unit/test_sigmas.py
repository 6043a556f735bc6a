"""A1111's noise schedules, and the diffusers schedulers that sample on them.

Expected numbers were computed with k-diffusion 5b3af030 (the commit A1111 v1.2.1 pins) over an ldm-style
``alphas_cumprod`` buffer; the sampler checks compare each scheduler's loop, on a fake eps model, with
k-diffusion's sampling formulas written out below.
"""

from __future__ import annotations

import pytest
import torch

from sdapi.engine.samplers import SAMPLERS, SCHEDULE_LAYOUTS, build_scheduler, find_sampler, install_a1111_sigmas
from sdapi.engine.sigmas import (
    a1111_sigmas, discard_next_to_last, karras_sigmas, ldm_alphas_cumprod, model_schedule, unipc_sigmas,
)
from sdapi.engine.txt2img import initial_latent

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
    sigmas, t = unipc_sigmas(sched, 8)
    assert t.tolist() == approx([999.0, 874.125, 749.25, 624.375, 499.5, 374.625, 249.75, 124.875, 0.0], rel=1e-5,
                                abs=1e-3)
    assert sigmas[0].item() == pytest.approx(sched.sigma_max, rel=1e-5)
    assert sigmas[-1].item() == pytest.approx(sched.sigma_min, rel=1e-5)  # UniPC stops at t = 1/1000, not 0
    # Between keypoints log(alpha) is interpolated, not log(sigma): close to, but not, k-diffusion's sigma.
    assert sigmas[1].item() == pytest.approx(sched.t_to_sigma(t[1:2]).item(), rel=1e-3)


# --- the schedulers on it -------------------------------------------------------------------------------------

MARKED = [s for s in SAMPLERS if s.a1111_sigmas]


def test_marked_rows_have_a_layout_and_the_others_are_unlisted():
    assert {s.name for s in MARKED} == {
        "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ SDE", "LMS Karras", "DPM2 Karras",
        "DPM2 a Karras", "DPM++ 2M Karras", "DPM++ SDE Karras", "UniPC"}
    for spec in MARKED:
        assert spec.scheduler in SCHEDULE_LAYOUTS and spec.exact


def _installed(spec, steps, half=False):
    scheduler = build_scheduler(spec, SD15, [1234])
    scheduler.set_timesteps(steps)
    assert install_a1111_sigmas(spec, scheduler, steps, half=half)
    return scheduler


@pytest.mark.parametrize("spec", MARKED, ids=lambda s: s.name)
@pytest.mark.parametrize("steps", [1, 2, 8])
def test_installed_schedule_starts_at_a1111s_first_sigma(spec, steps, sched):
    scheduler = _installed(spec, steps)
    calls = 2 * steps - 1 if spec.second_order else steps
    assert len(scheduler.timesteps) == calls and scheduler.timesteps.dtype == torch.float32
    assert scheduler.timesteps[0].item() == pytest.approx(999.0)
    if spec.kdiffusion:
        sigmas = a1111_sigmas(sched, steps, spec.karras, spec.discard_penultimate_sigma)
        assert scheduler.sigmas[0] == sigmas[0] and scheduler.sigmas[-1] == 0
        noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
        start = initial_latent(noise, scheduler, spec)
        if spec.scheduler == "DPMSolverMultistepScheduler":  # VP space: noise * sigma * c_in
            assert torch.equal(start, noise * sigmas[0] * (1 / (sigmas[0] ** 2 + 1.0) ** 0.5))
        else:
            assert torch.equal(start, noise * sigmas[0])
    if not spec.second_order:
        expected = (sched.sigma_to_t(scheduler.sigmas[:-1]) if spec.kdiffusion else unipc_sigmas(sched, steps)[1][:-1])
        assert torch.equal(scheduler.timesteps, expected)


def test_half_precision_uses_the_float16_schedule():
    scheduler = _installed(find_sampler("Euler"), 8, half=True)
    # Interpolated (float32) from float16 log-sigmas, as k-diffusion does: 14.6090 / 0.03125, not 14.6146 / 0.02917.
    assert scheduler.sigmas[0].item() == pytest.approx(14.609041, rel=1e-6)
    assert scheduler.sigmas[-2].item() == pytest.approx(0.03125, rel=1e-3)


def test_unmarked_or_unknown_schedulers_keep_their_own():
    spec = find_sampler("DDIM")
    scheduler = build_scheduler(spec, SD15, [1])
    scheduler.set_timesteps(8)
    before = scheduler.timesteps.clone()
    assert not install_a1111_sigmas(spec, scheduler, 8)
    assert torch.equal(scheduler.timesteps, before)
    euler = find_sampler("Euler")
    scheduler = build_scheduler(euler, {**SD15, "beta_schedule": "squaredcos_cap_v2"}, [1])
    scheduler.set_timesteps(8)
    assert not install_a1111_sigmas(euler, scheduler, 8)


def test_schedulers_are_fresh_copies_seeded_per_request():
    spec = find_sampler("DPM++ SDE")
    a, b = build_scheduler(spec, SD15, [5, 6]), build_scheduler(spec, SD15, 7)
    assert a is not b and a.noise_sampler_seed == [5, 6] and b.config["noise_sampler_seed"] == 7
    a.set_timesteps(4)
    assert len(a.timesteps) == 7 and len(build_scheduler(spec, SD15, 7).timesteps) != 7


# k-diffusion's samplers (eta 1, no churn), written out for a fake eps model that depends on x and t.

def fake_eps(x, t):
    return torch.tanh(x) * (1.0 + t / 1000.0)


def kd_denoise(sched, x, sigma):
    c_in = 1 / (sigma ** 2 + 1.0) ** 0.5
    return x - sigma * fake_eps(x * c_in, sched.sigma_to_t(sigma.reshape(1)).reshape(()))


def kd_sample(kind, sched, x, sigmas, generator):
    def ancestral(s, s_next):
        up = min(s_next, (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
        return (s_next ** 2 - up ** 2) ** 0.5, up

    old = None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        den = kd_denoise(sched, x, s)
        d = (x - den) / s
        if kind == "euler":
            x = x + d * (s_next - s)
        elif kind == "euler_a":
            down, up = ancestral(s, s_next)
            x = x + d * (down - s)
            if s_next > 0:
                x = x + torch.randn(x.shape, generator=generator) * up
        elif kind == "heun":
            if s_next == 0:
                x = x + d * (s_next - s)
            else:
                x2 = x + d * (s_next - s)
                d2 = (x2 - kd_denoise(sched, x2, s_next)) / s_next
                x = x + (d + d2) / 2 * (s_next - s)
        elif kind in ("dpm2", "dpm2_a"):
            target, up = ancestral(s, s_next) if kind == "dpm2_a" else (s_next, 0.0)
            if target == 0:
                x = x + d * (target - s)
            else:
                mid = s.log().lerp(target.log(), 0.5).exp()
                x2 = x + d * (mid - s)
                d2 = (x2 - kd_denoise(sched, x2, mid)) / mid
                x = x + d2 * (target - s)
                if kind == "dpm2_a":
                    x = x + torch.randn(x.shape, generator=generator) * up
        elif kind == "dpmpp_2m":
            t, t_next = -s.log(), -s_next.log()
            h = t_next - t
            if old is None or s_next == 0:
                x = (s_next / s) * x - (-h).expm1() * den
            else:
                r = (t - (-sigmas[i - 1].log())) / h
                x = (s_next / s) * x - (-h).expm1() * ((1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old)
            old = den
    return x


@pytest.mark.parametrize("name, kind", [
    ("Euler", "euler"), ("Euler a", "euler_a"), ("Heun", "heun"), ("DPM2", "dpm2"), ("DPM2 Karras", "dpm2"),
    ("DPM2 a", "dpm2_a"), ("DPM2 a Karras", "dpm2_a"), ("DPM++ 2M", "dpmpp_2m"), ("DPM++ 2M Karras", "dpmpp_2m"),
])
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_scheduler_loop_equals_kdiffusion(name, kind, steps, sched):
    spec = find_sampler(name)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(42))
    sigmas = a1111_sigmas(sched, steps, spec.karras, spec.discard_penultimate_sigma)
    expected = kd_sample(kind, sched, noise * sigmas[0], sigmas, torch.Generator().manual_seed(7))

    scheduler = _installed(spec, steps)
    generators = [torch.Generator().manual_seed(7)]
    x = initial_latent(noise, scheduler, spec)
    extra = {"generator": generators} if spec.ancestral else {}
    for t in scheduler.timesteps:
        eps = fake_eps(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(eps, t, x, **extra).prev_sample
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)
