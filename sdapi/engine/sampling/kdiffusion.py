"""A1111's k-diffusion samplers, written after k-diffusion 0.0.12's ``sampling.py`` (the commit A1111 v1.2.1 pins).

Each function takes what A1111 passes and computes the same expressions in the same order, so that an image
matches A1111's to the last bit of the model outputs. Arguments:

* ``denoise(x, sigma per image) -> denoised x``: A1111's CFG denoiser (:class:`~.denoiser.CfgDenoiser`);
* ``x``: the starting latent, already at the first sigma;
* ``sigmas``: the schedule, descending, ending with 0 (DPM fast/adaptive take a sigma range instead);
* ``noise(like, sigma, sigma_next)``: k-diffusion's noise sampler (A1111's pre-drawn or seeded ``randn_like``, or
  the Brownian tree for DPM++ SDE);
* ``callback(i, denoised)``: A1111's ``callback_state``, after each step's first model call;
* ``eta``, ``s_noise``, ``s_churn``, ``s_tmin``, ``s_tmax``: A1111's request values or option defaults.
"""

from __future__ import annotations

from typing import Callable

import torch
from scipy import integrate

from sdapi.engine.sampling.dpm_solver import (
    Denoiser,
    DpmSolver,
    NoiseFn,
    StepCallback,
    ancestral_step,
    sigma_of,
    solve_adaptive,
    solve_fast,
    t_of,
)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The Karras ODE derivative of a denoiser output."""
    return (x - denoised) / sigma


def _churn(x: torch.Tensor, sigmas: torch.Tensor, i: int, noise: NoiseFn, s_churn: float, s_tmin: float,
           s_tmax: float, s_noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Karras' stochastic churn at step ``i``: ``(x, sigma_hat)``.

    k-diffusion draws the churn noise on every step, used or not; A1111's ``randn_like`` hands out pre-drawn batch
    noise, so the draw is kept to leave the later ancestral draws where A1111 has them.
    """
    gamma = min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.
    eps = noise(x, sigmas[i], sigmas[i + 1]) * s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


@torch.no_grad()
def sample_euler(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                 callback: StepCallback | None = None, s_churn: float = 0., s_tmin: float = 0.,
                 s_tmax: float = float("inf"), s_noise: float = 1.) -> torch.Tensor:
    """Euler steps (Karras et al. 2022, algorithm 2)."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        if callback is not None:
            callback(i, denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                           callback: StepCallback | None = None, eta: float = 1., s_noise: float = 1.
                           ) -> torch.Tensor:
    """Ancestral Euler steps: to ``sigma_down``, then fresh noise up to the next sigma."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if callback is not None:
            callback(i, denoised)
        d = to_d(x, sigmas[i], denoised)
        x = x + d * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_heun(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                callback: StepCallback | None = None, s_churn: float = 0., s_tmin: float = 0.,
                s_tmax: float = float("inf"), s_noise: float = 1.) -> torch.Tensor:
    """Heun steps (Karras et al. 2022, algorithm 2); the step to sigma 0 is a plain Euler step."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        if callback is not None:
            callback(i, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], denoise(x_2, sigmas[i + 1] * s_in))
            x = x + (d + d_2) / 2 * dt
    return x


@torch.no_grad()
def sample_dpm_2(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                 callback: StepCallback | None = None, s_churn: float = 0., s_tmin: float = 0.,
                 s_tmax: float = float("inf"), s_noise: float = 1.) -> torch.Tensor:
    """DPM-Solver-2-style steps through the log-midpoint of each interval; the step to 0 is an Euler step."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        if callback is not None:
            callback(i, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            d_2 = to_d(x_2, sigma_mid, denoise(x_2, sigma_mid * s_in))
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                           callback: StepCallback | None = None, eta: float = 1., s_noise: float = 1.
                           ) -> torch.Tensor:
    """Ancestral DPM-Solver-2 steps: through the log-midpoint to ``sigma_down``, then fresh noise."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if callback is not None:
            callback(i, denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            d_2 = to_d(x_2, sigma_mid, denoise(x_2, sigma_mid * s_in))
            x = x + d_2 * (sigma_down - sigmas[i])
            x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def linear_multistep_coeff(order: int, t, i: int, j: int) -> float:
    """The Adams-Bashforth weight of derivative ``j`` back for step ``i`` (integrated as k-diffusion does)."""
    if order - 1 > i:
        raise ValueError(f"Order {order} too high for step {i}")

    def basis(tau: float) -> float:
        prod = 1.
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
               callback: StepCallback | None = None, order: int = 4) -> torch.Tensor:
    """Linear multistep (order 4) over the sigma schedule."""
    s_in = x.new_ones([x.shape[0]])
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        if callback is not None:
            callback(i, denoised)
        cur_order = min(i + 1, order)
        coeffs = [linear_multistep_coeff(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
        x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                              callback: StepCallback | None = None, eta: float = 1., s_noise: float = 1.
                              ) -> torch.Tensor:
    """DPM-Solver++(2S) ancestral: a single-step 2nd-order solve to ``sigma_down``, then fresh noise.

    The step to sigma 0 is a plain Euler step (one model call).
    """
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if callback is not None:
            callback(i, denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = t_of(sigmas[i]), t_of(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (sigma_of(s) / sigma_of(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = denoise(x_2, sigma_of(s) * s_in)
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_sde(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                     callback: StepCallback | None = None, eta: float = 1., s_noise: float = 1., r: float = 1 / 2
                     ) -> torch.Tensor:
    """DPM-Solver++ (stochastic): two ancestral half steps per interval, noise from a Brownian tree."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        if callback is not None:
            callback(i, denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = t_of(sigmas[i]), t_of(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sd, su = ancestral_step(sigma_of(t), sigma_of(s), eta)
        s_ = t_of(sd)
        x_2 = (sigma_of(s_) / sigma_of(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(x, sigma_of(t), sigma_of(s)) * s_noise * su
        denoised_2 = denoise(x_2, sigma_of(s) * s_in)
        sd, su = ancestral_step(sigma_of(t), sigma_of(t_next), eta)
        t_next_ = t_of(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (sigma_of(t_next_) / sigma_of(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(x, sigma_of(t), sigma_of(t_next)) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn,
                    callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M): a multistep 2nd-order solver; the first and the last step are 1st order."""
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        if callback is not None:
            callback(i, denoised)
        t, t_next = t_of(sigmas[i]), t_of(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_of(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpm_fast(denoise: Denoiser, x: torch.Tensor, sigma_min: float, sigma_max: float, n: int,
                    noise: NoiseFn, callback: StepCallback | None = None, eta: float = 0., s_noise: float = 1.
                    ) -> torch.Tensor:
    """DPM-Solver-fast between two noise levels with a budget of ``n`` model calls.

    Raises:
        ValueError: a sigma of 0 (the solver's time is ``-log(sigma)``).
    """
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    return solve_fast(DpmSolver(denoise), x, t_of(torch.tensor(sigma_max)), t_of(torch.tensor(sigma_min)), n, eta,
                      noise, callback, s_noise)


@torch.no_grad()
def sample_dpm_adaptive(denoise: Denoiser, x: torch.Tensor, sigma_min: float, sigma_max: float, noise: NoiseFn,
                        callback: StepCallback | None = None, eta: float = 0., s_noise: float = 1.
                        ) -> torch.Tensor:
    """DPM-Solver-23 with adaptive step size between two noise levels (k-diffusion's default tolerances).

    Raises:
        ValueError: a sigma of 0.
    """
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    return solve_adaptive(DpmSolver(denoise), x, t_of(torch.tensor(sigma_max)), t_of(torch.tensor(sigma_min)), eta,
                          noise, callback, s_noise=s_noise)


KDIFFUSION_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpm_fast": sample_dpm_fast,
    "dpm_adaptive": sample_dpm_adaptive,
}
