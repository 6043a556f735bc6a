"""Our k-diffusion samplers on denoisers with known answers.

Pixel agreement with real A1111 images is the parity suite's job (``tests/parity``); these check the algorithms'
structure: model-call budgets, where noise is drawn, and exact results on a constant denoiser (the "image" ``c``
is known, so an ODE solver must land on ``c + (x - c) * sigma_end / sigma_start``).
"""

from __future__ import annotations

import math

import pytest
import torch

from sdapi.engine.sampling.dpm_solver import PidStepSizeController, ancestral_step, step_orders
from sdapi.engine.sampling.kdiffusion import (
    KDIFFUSION_FUNCTIONS,
    sample_dpm_adaptive,
    sample_dpm_fast,
    sample_dpmpp_2s_ancestral,
)
from sdapi.engine.sampling.schedules import karras_sigmas

SIGMA_MIN, SIGMA_MAX = 0.0292, 14.6146


class ConstantDenoiser:
    """Always predicts the same clean image; counts its calls."""

    def __init__(self, image: torch.Tensor):
        self.image = image
        self.calls = 0
        self.sigmas: list[float] = []

    def __call__(self, x, sigma):
        self.calls += 1
        self.sigmas.append(float(sigma[0]))
        return self.image.expand_as(x).clone()


class CountingNoise:
    """Zero noise (so results stay analytic) that counts how often it is asked."""

    def __init__(self):
        self.draws = 0

    def __call__(self, like, sigma=None, sigma_next=None):
        self.draws += 1
        return torch.zeros_like(like)


def start(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 8, 8, generator=g) * SIGMA_MAX, torch.randn(1, 4, 8, 8, generator=g)


def test_ancestral_step_splits_the_target_variance():
    sigma_from, sigma_to = torch.tensor(3.0), torch.tensor(2.0)
    down, up = ancestral_step(sigma_from, sigma_to, 1.0)
    assert math.isclose(float(down ** 2 + up ** 2), 4.0, rel_tol=1e-6)
    assert math.isclose(float(up), math.sqrt(4.0 * (9.0 - 4.0) / 9.0), rel_tol=1e-6)
    assert ancestral_step(sigma_from, sigma_to, 0.0) == (sigma_to, 0.0)
    assert float(ancestral_step(sigma_from, torch.tensor(0.0), 1.0)[0]) == 0.0


@pytest.mark.parametrize("nfe, orders", [(8, [3, 3, 2]), (9, [3, 3, 2, 1]), (4, [3, 1]), (1, [1]), (3, [2, 1])])
def test_dpm_fast_spends_exactly_its_model_call_budget(nfe, orders):
    assert step_orders(nfe) == orders
    assert all(sum(step_orders(n)) == n for n in range(1, 40))


def test_dpmpp_2s_ancestral_calls_twice_per_step_but_the_last_and_lands_on_the_image():
    x, image = start()
    sigmas = karras_sigmas(6, SIGMA_MIN, SIGMA_MAX)
    denoise, noise = ConstantDenoiser(image), CountingNoise()
    out = sample_dpmpp_2s_ancestral(denoise, x, sigmas, eta=1.0, noise=noise)
    assert denoise.calls == 2 * 6 - 1 and noise.draws == 6 - 1
    # The last step is an Euler step to sigma 0: exactly the denoised image.
    assert torch.allclose(out, image.expand_as(out), atol=1e-5)


def test_dpmpp_2s_ancestral_second_call_is_at_the_log_midpoint_of_sigma_down():
    x, image = start()
    sigmas = torch.tensor([10.0, 4.0, 0.0])
    denoise = ConstantDenoiser(image)
    sample_dpmpp_2s_ancestral(denoise, x, sigmas, eta=1.0, noise=CountingNoise())
    down, _ = ancestral_step(sigmas[0], sigmas[1], 1.0)
    assert denoise.sigmas[0] == 10.0
    assert math.isclose(denoise.sigmas[1], math.sqrt(10.0 * float(down)), rel_tol=1e-5)
    assert denoise.sigmas[2] == 4.0


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpm_fast_solves_the_constant_image_ode_exactly(eta):
    x, image = start()
    denoise, noise = ConstantDenoiser(image), CountingNoise()
    out = sample_dpm_fast(denoise, x, SIGMA_MIN, SIGMA_MAX, n=8, eta=eta, noise=noise)
    assert denoise.calls == 8
    assert noise.draws == 3  # one per step, even at eta 0 (k-diffusion draws and multiplies by 0)
    if eta == 0.0:
        expected = image + (x - image) * (SIGMA_MIN / SIGMA_MAX)
        assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_dpm_fast_refuses_a_zero_sigma():
    x, image = start()
    with pytest.raises(ValueError, match="must not be 0"):
        sample_dpm_fast(ConstantDenoiser(image), x, 0.0, SIGMA_MAX, 8, noise=CountingNoise())


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpm_adaptive_calls_three_times_per_attempt_and_draws_noise_per_accepted_step(eta, monkeypatch):
    decisions = []
    propose = PidStepSizeController.propose_step

    def recording(self, error):
        decisions.append(propose(self, error))
        return decisions[-1]

    monkeypatch.setattr(PidStepSizeController, "propose_step", recording)
    x, image = start()
    denoise, noise = ConstantDenoiser(image), CountingNoise()
    out = sample_dpm_adaptive(denoise, x, SIGMA_MIN, SIGMA_MAX, eta=eta, noise=noise)
    assert denoise.calls == 3 * len(decisions)
    assert noise.draws == sum(decisions)
    if eta == 0.0:
        expected = image + (x - image) * (SIGMA_MIN / SIGMA_MAX)
        assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_pid_controller_accepts_small_errors_and_shrinks_the_step_on_large_ones():
    pid = PidStepSizeController(0.05, 0.0, 1.0, 0.0, order=3)
    assert pid.propose_step(0.5) and pid.h > 0.05
    h = pid.h
    assert not pid.propose_step(50.0) and pid.h < h


def gaussian_denoiser(x, sigma):
    """The ideal denoiser for unit-variance Gaussian data: its probability-flow ODE has a closed form."""
    return x * (1.0 / (1.0 + sigma[:, None, None, None] ** 2))


def relative_error(out, x):
    exact = x * math.sqrt(1.0 + SIGMA_MIN ** 2) / math.sqrt(1.0 + SIGMA_MAX ** 2)
    return float((out - exact).norm() / exact.norm())


def test_dpm_solvers_converge_on_a_gaussian_with_high_order():
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * SIGMA_MAX
    zero = CountingNoise()
    coarse = relative_error(sample_dpm_fast(gaussian_denoiser, x, SIGMA_MIN, SIGMA_MAX, 8, zero, eta=0.0), x)
    fine = relative_error(sample_dpm_fast(gaussian_denoiser, x, SIGMA_MIN, SIGMA_MAX, 12, zero, eta=0.0), x)
    # Third-order steps: 12 calls (4 steps) beat 8 calls (3 steps) by far more than a first-order method would.
    assert coarse < 0.05 and fine < 0.015 and fine < coarse / 2.5
    adaptive = relative_error(sample_dpm_adaptive(gaussian_denoiser, x, SIGMA_MIN, SIGMA_MAX, zero, eta=0.0), x)
    assert adaptive < 0.05


# (function, model calls for n steps, noise draws for n steps) with eta 1 and no churn.
SCHEDULE_FUNCTIONS = {
    "euler": (lambda n: n, lambda n: n),  # k-diffusion draws churn noise every step, used or not
    "euler_ancestral": (lambda n: n, lambda n: n - 1),
    "heun": (lambda n: 2 * n - 1, lambda n: n),
    "dpm_2": (lambda n: 2 * n - 1, lambda n: n),
    "dpm_2_ancestral": (lambda n: 2 * n - 1, lambda n: n - 1),
    "lms": (lambda n: n, lambda n: 0),
    "dpmpp_2s_ancestral": (lambda n: 2 * n - 1, lambda n: n - 1),
    "dpmpp_sde": (lambda n: 2 * n - 1, lambda n: 2 * (n - 1)),
    "dpmpp_2m": (lambda n: n, lambda n: 0),
}


@pytest.mark.parametrize("name", sorted(SCHEDULE_FUNCTIONS))
def test_schedule_samplers_call_the_model_and_draw_noise_as_kdiffusion_does(name):
    x, image = start()
    steps = 6
    sigmas = karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX)
    denoise, noise = ConstantDenoiser(image), CountingNoise()
    out = KDIFFUSION_FUNCTIONS[name](denoise, x, sigmas=sigmas, noise=noise)
    calls, draws = SCHEDULE_FUNCTIONS[name]
    assert (denoise.calls, noise.draws) == (calls(steps), draws(steps))
    assert denoise.sigmas[0] == float(sigmas[0])
    # Every solver ends with a step to sigma 0 on a denoiser that always knows the image: the image.
    assert torch.allclose(out, image.expand_as(out), atol=1e-4)


@pytest.mark.parametrize("name", ["euler", "heun", "dpm_2", "lms", "dpmpp_2m"])
def test_deterministic_samplers_follow_the_constant_image_ode(name):
    # Stopping at a non-zero sigma: the ODE x(sigma) = c + (x0 - c) * sigma / sigma0 is linear in sigma, so each
    # solver is exact on it.
    x, image = start()
    sigmas = torch.tensor([SIGMA_MAX, 5.0, 2.0, 0.5])
    out = KDIFFUSION_FUNCTIONS[name](ConstantDenoiser(image), x, sigmas=sigmas, noise=CountingNoise())
    expected = image + (x - image) * (0.5 / SIGMA_MAX)
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_churn_adds_noise_only_inside_its_sigma_window():
    x, image = start()
    sigmas = torch.tensor([SIGMA_MAX, 5.0, 2.0, 0.0])

    def run(**churn):
        denoise = ConstantDenoiser(image)
        KDIFFUSION_FUNCTIONS["euler"](denoise, x, sigmas=sigmas, noise=lambda like, *a: torch.ones_like(like),
                                      **churn)
        return denoise.sigmas

    assert run() == [float(s) for s in sigmas[:-1]]
    churned = run(s_churn=1.0, s_tmin=3.0, s_tmax=20.0)
    gamma = min(1.0 / 3, 2 ** 0.5 - 1)
    assert churned[0] == pytest.approx(SIGMA_MAX * (1 + gamma)) and churned[1] == pytest.approx(5.0 * (1 + gamma))
    assert churned[2] == 2.0
