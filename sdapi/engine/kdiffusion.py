"""k-diffusion samplers that no diffusers scheduler implements, written after k-diffusion's ``sampling.py``.

A1111 v1.2.1 runs these through k-diffusion (commit 5b3af030) with its CFG denoiser; each function here takes the
same arguments A1111 passes and computes the same expressions in the same order, so that an image matches A1111's
to the last bit of the model outputs. A denoiser maps ``(x, sigma per image)`` to the denoised ``x``
(:class:`sdapi.engine.cfg_denoiser.CfgDenoiser`); ``noise(x)`` returns ancestral noise shaped like ``x``
(:class:`sdapi.engine.sampler_noise.SamplerNoise`).

``KDIFFUSION_LOOPS`` is the table the sampler registry refers to by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sdapi.engine.dpm_solver import (
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


@torch.no_grad()
def sample_dpmpp_2s_ancestral(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, eta: float, noise: NoiseFn,
                              callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver++(2S) ancestral: a single-step 2nd-order solve to ``sigma_down``, then fresh noise.

    The step to sigma 0 is a plain Euler step (one model call), so ``len(sigmas) - 1`` steps make
    ``2 * (len(sigmas) - 1) - 1`` model calls.

    Args:
        denoise: the denoiser.
        x: the starting latent (noise times ``sigmas[0]``).
        sigmas: the schedule, descending, ending with 0.
        eta: ancestral amount (A1111's ``eta_ancestral``, 1 by default).
        noise: the ancestral noise source (drawn after every step but the last).
        callback: called with each step's index and denoised start.

    Returns:
        The final latent.
    """
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if callback is not None:
            callback(i, denoised)
        if sigma_down == 0:
            derivative = (x - denoised) / sigmas[i]
            x = x + derivative * (sigma_down - sigmas[i])
        else:
            t, t_next = t_of(sigmas[i]), t_of(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (sigma_of(s) / sigma_of(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = denoise(x_2, sigma_of(s) * s_in)
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(x) * sigma_up
    return x


@torch.no_grad()
def sample_dpm_fast(denoise: Denoiser, x: torch.Tensor, sigma_min: float, sigma_max: float, n: int, eta: float,
                    noise: NoiseFn, callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver-fast between two noise levels with a budget of ``n`` model calls.

    Args:
        denoise, x, eta, noise, callback: as :func:`sample_dpmpp_2s_ancestral`.
        sigma_min, sigma_max: the noise range (txt2img: the model's smallest and largest sigma), both > 0.
        n: model calls (A1111: the step count).

    Raises:
        ValueError: a sigma of 0 (the solver's time is ``-log(sigma)``).
    """
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    return solve_fast(DpmSolver(denoise), x, t_of(torch.tensor(sigma_max)), t_of(torch.tensor(sigma_min)), n, eta,
                      noise, callback)


@torch.no_grad()
def sample_dpm_adaptive(denoise: Denoiser, x: torch.Tensor, sigma_min: float, sigma_max: float, eta: float,
                        noise: NoiseFn, callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver-23 with adaptive step size between two noise levels (k-diffusion's default tolerances).

    Args:
        denoise, x, eta, noise, callback: as :func:`sample_dpmpp_2s_ancestral`.
        sigma_min, sigma_max: as :func:`sample_dpm_fast`.

    Raises:
        ValueError: a sigma of 0.
    """
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    return solve_adaptive(DpmSolver(denoise), x, t_of(torch.tensor(sigma_max)), t_of(torch.tensor(sigma_min)), eta,
                          noise, callback)


@dataclass(frozen=True)
class KDiffusionLoop:
    """One of our k-diffusion sampling functions and how A1111 calls it.

    Args:
        function: the sampler.
        takes_sigma_range: called with ``sigma_min, sigma_max`` (and ``n`` when ``takes_step_count``) instead of
            the schedule, as A1111 does for the DPM-Solver samplers.
        takes_step_count: gets ``n``, the number of model calls.
    """

    function: Callable[..., torch.Tensor]
    takes_sigma_range: bool = False
    takes_step_count: bool = False


KDIFFUSION_LOOPS: dict[str, KDiffusionLoop] = {
    "dpmpp_2s_ancestral": KDiffusionLoop(sample_dpmpp_2s_ancestral),
    "dpm_fast": KDiffusionLoop(sample_dpm_fast, takes_sigma_range=True, takes_step_count=True),
    "dpm_adaptive": KDiffusionLoop(sample_dpm_adaptive, takes_sigma_range=True),
}
