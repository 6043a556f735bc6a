"""DPM-Solver (Lu et al. 2022, arXiv:2206.00927) in k-diffusion's formulation: A1111's "DPM fast" and "DPM adaptive".

The solver works in ``t = -log(sigma)`` on a denoiser ``D(x, sigma)`` through the noise prediction
``eps = (x - D(x, sigma)) / sigma``. Each step of order 1, 2 or 3 evaluates ``eps`` at the step start and at 0, 1 or
2 intermediate times; evaluations are cached per step by name, so the adaptive sampler's lower-order estimate and
its higher-order one share their model calls (3 per attempted step).

With ``eta > 0`` (A1111 passes ``eta_ancestral``, 1 by default) both samplers are ancestral: each step ends at
the ancestral ``sigma_down`` and adds fresh noise up to the step's target sigma. A1111 v1.2.1 runs these exactly as
k-diffusion does; every expression below keeps k-diffusion's operand order and dtypes (float32 tensors for times,
Python floats for the step-size controller), so the results match it bit for bit on the same model outputs.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

# (x, sigma per image) -> denoised x
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (a tensor shaped like x, sigma, next sigma) -> standard normal noise of that shape (k-diffusion's noise_sampler)
NoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# (step index, denoised prediction at the step start)
StepCallback = Callable[[int, torch.Tensor], None]


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """k-diffusion's ``get_ancestral_step``: the sigma to step down to and the noise to add afterwards.

    Args:
        sigma_from, sigma_to: the step's start and target noise levels (0-dim tensors).
        eta: ancestral amount (0: a deterministic step to ``sigma_to``).

    Returns:
        ``(sigma_down, sigma_up)``; ``sigma_up`` is ``0.`` (a float) when ``eta`` is 0.
    """
    if not eta:
        return sigma_to, 0.
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def t_of(sigma: torch.Tensor) -> torch.Tensor:
    """Solver time of a noise level: ``-log(sigma)``."""
    return -sigma.log()


def sigma_of(t: torch.Tensor) -> torch.Tensor:
    """Noise level of a solver time: ``exp(-t)``."""
    return t.neg().exp()


class PidStepSizeController:
    """k-diffusion's PID controller for the adaptive step size (errors and factors as Python floats).

    Args:
        h: initial step size in ``t``.
        pcoeff, icoeff, dcoeff: proportional, integral and derivative gains.
        order: the error estimate's order (1.5 for ancestral sampling).
        accept_safety: a step is accepted when the limited factor is at least this.
        eps: added to the error before inverting it.
    """

    def __init__(self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float = 1,
                 accept_safety: float = 0.81, eps: float = 1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.inverse_errors: list[float] = []

    @staticmethod
    def limiter(x: float) -> float:
        """Soft limit on the step-size factor: ``1 + atan(x - 1)``."""
        return 1 + math.atan(x - 1)

    def propose_step(self, error) -> bool:
        """Scale ``h`` from the last error (accepted or not); returns whether the step is accepted."""
        inv_error = 1 / (float(error) + self.eps)
        if not self.inverse_errors:
            self.inverse_errors = [inv_error, inv_error, inv_error]
        self.inverse_errors[0] = inv_error
        errs = self.inverse_errors
        factor = self.limiter(errs[0] ** self.b1 * errs[1] ** self.b2 * errs[2] ** self.b3)
        accept = factor >= self.accept_safety
        if accept:
            errs[2] = errs[1]
            errs[1] = errs[0]
        self.h *= factor
        return accept


class DpmSolver:
    """DPM-Solver steps of order 1-3 over a denoiser, with a per-step cache of noise predictions.

    Args:
        denoise: the denoiser (A1111's CFG denoiser).
    """

    def __init__(self, denoise: Denoiser):
        self.denoise = denoise

    def eps(self, cache: dict, key: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise prediction at time ``t``, evaluated once per ``key`` within a step."""
        if key not in cache:
            sigma = sigma_of(t) * x.new_ones([x.shape[0]])
            cache[key] = (x - self.denoise(x, sigma)) / sigma_of(t)
        return cache[key]

    def step_1(self, x, t, t_next, cache: dict) -> torch.Tensor:
        """First order (DDIM-like) step."""
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        return x - sigma_of(t_next) * h.expm1() * eps

    def step_2(self, x, t, t_next, cache: dict, r1: float = 1 / 2) -> torch.Tensor:
        """Second order step with one intermediate evaluation at ``t + r1 * h``."""
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - sigma_of(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - sigma_of(t_next) * h.expm1() * eps - sigma_of(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache: dict, r1: float = 1 / 3, r2: float = 2 / 3) -> torch.Tensor:
        """Third order step with intermediate evaluations at ``t + r1 * h`` and ``t + r2 * h``."""
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        s2 = t + r2 * h
        u1 = x - sigma_of(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (x - sigma_of(s2) * (r2 * h).expm1() * eps
              - sigma_of(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - sigma_of(t_next) * h.expm1() * eps - sigma_of(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def step(self, order: int, x, t, t_next, cache: dict) -> torch.Tensor:
        """One step of the given order (1, 2 or 3) with default intermediate times."""
        return (self.step_1, self.step_2, self.step_3)[order - 1](x, t, t_next, cache)

    def ancestral_target(self, t, t_next, t_end, eta: float):
        """Where an ancestral step really ends (``t`` of ``sigma_down``, capped at ``t_end``) and the noise it adds."""
        if not eta:
            return t_next, 0.
        sigma_down, _ = ancestral_step(sigma_of(t), sigma_of(t_next), eta)
        t_down = torch.minimum(t_end, t_of(sigma_down))
        return t_down, (sigma_of(t_next) ** 2 - sigma_of(t_down) ** 2) ** 0.5


def step_orders(nfe: int) -> list[int]:
    """DPM-Solver-fast's orders for a budget of ``nfe`` model calls: mostly 3rd order, summing to ``nfe``."""
    steps = nfe // 3 + 1
    if nfe % 3 == 0:
        return [3] * (steps - 2) + [2, 1]
    return [3] * (steps - 1) + [nfe % 3]


def solve_fast(solver: DpmSolver, x: torch.Tensor, t_start: torch.Tensor, t_end: torch.Tensor, nfe: int,
               eta: float, noise: NoiseFn, callback: StepCallback | None = None, s_noise: float = 1.0
               ) -> torch.Tensor:
    """DPM-Solver-fast: ``nfe`` model calls on a grid uniform in ``t``.

    Args:
        solver: the solver over the denoiser.
        x: the starting latent (noise times sigma_max).
        t_start, t_end: solver times of sigma_max and sigma_min (0-dim float32 tensors).
        nfe: model-call budget (A1111: the step count).
        eta: ancestral amount; noise is drawn after every step when it is not 0, as k-diffusion does.
        noise: the ancestral noise source.
        callback: called with each step's index and denoised start.
        s_noise: scale of the ancestral noise.

    Returns:
        The final latent.
    """
    orders = step_orders(nfe)
    ts = torch.linspace(t_start, t_end, nfe // 3 + 2, device=x.device)
    for i, order in enumerate(orders):
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        t_target, sigma_up = solver.ancestral_target(t, t_next, t_end, eta)
        eps = solver.eps(cache, "eps", x, t)
        if callback is not None:
            callback(i, x - sigma_of(t) * eps)
        x = solver.step(order, x, t, t_target, cache)
        x = x + sigma_up * s_noise * noise(x, sigma_of(t), sigma_of(t_next))
    return x


def solve_adaptive(solver: DpmSolver, x: torch.Tensor, t_start: torch.Tensor, t_end: torch.Tensor, eta: float,
                   noise: NoiseFn, callback: StepCallback | None = None, rtol: float = 0.05, atol: float = 0.0078,
                   h_init: float = 0.05, pcoeff: float = 0., icoeff: float = 1., dcoeff: float = 0.,
                   accept_safety: float = 0.81, s_noise: float = 1.0) -> torch.Tensor:
    """DPM-Solver-23 with adaptive step size (k-diffusion's defaults: order 3, rtol 0.05, atol 0.0078).

    Each attempt evaluates a 2nd-order (``r1 = 1/3``) and a 3rd-order estimate with 3 model calls; their scaled
    RMS difference drives the PID controller. Rejected attempts are retried with a smaller step; ancestral noise is
    drawn only after accepted ones.

    Args:
        solver, x, t_start, t_end, eta, noise: as :func:`solve_fast`.
        callback: called after every attempt with its index and the denoised prediction at its start.
        rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety: error tolerances and controller settings.
        s_noise: scale of the ancestral noise.

    Returns:
        The final latent.
    """
    forward = bool(t_end > t_start)
    h_init = abs(h_init) * (1 if forward else -1)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    s, x_prev = t_start, x
    pid = PidStepSizeController(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else 3, accept_safety)
    attempt = 0
    while s < t_end - 1e-5 if forward else s > t_end + 1e-5:
        cache: dict = {}
        t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
        t_target, sigma_up = solver.ancestral_target(s, t, t_end, eta)
        eps = solver.eps(cache, "eps", x, s)
        denoised = x - sigma_of(s) * eps
        x_low = solver.step_2(x, s, t_target, cache, r1=1 / 3)
        x_high = solver.step_3(x, s, t_target, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose_step(error):
            x_prev = x_low
            x = x_high + sigma_up * s_noise * noise(x_high, sigma_of(s), sigma_of(t))
            s = t
        if callback is not None:
            callback(attempt, denoised)
        attempt += 1
    return x
