"""A1111's CompVis samplers DDIM and PLMS, written after ldm's ``DDIMSampler``/``PLMSSampler`` (Stability-AI
stablediffusion cf1d67a) with A1111 v1.2.1's hooks around each step.

A1111's hook, before every ldm step: stop if interrupted, pick the step's conditioning, and for a masked img2img
paste the original, re-noised to the step's timestep, into the kept area. After it: remember the step's ``x0``
prediction (masked) as the latent an interrupt returns, and count the step. ldm's noise draws (``noise_like``,
``q_sample``'s ``randn_like``) come from A1111's global generator even when multiplied by a zero ``eta``; they are
drawn here from the same stream, in the same order, so that a masked job sees A1111's re-noising noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from sdapi.engine.sampling.denoiser import CompVisGuidance, check_stop
from sdapi.engine.sampling.schedules import DdimSchedule, DiscreteSchedule

# like -> standard normal noise of that shape, from A1111's global generator stream
GlobalNoise = Callable[[torch.Tensor], torch.Tensor]
# (A1111's step counter after the update, the latent it stores)
UpdateCallback = Callable[[int, torch.Tensor], None]


@dataclass
class CompVisRun:
    """What A1111's hooks around one CompVis sampling run hold.

    Args:
        guidance: the guided model (its ``step`` is A1111's hook counter).
        schedule: the model's discrete schedule (ldm's ``q_sample`` and v-prediction buffers).
        noise: A1111's global ``randn`` stream.
        v_prediction: the model predicts v.
        callback: called after every update with the counter and the stored latent.
        mask, nmask, init_latent: img2img's keep mask, its complement and the encoded original, or ``None``.
        last: the latent an interrupt returns (A1111's ``last_latent``).
    """

    guidance: CompVisGuidance
    schedule: DiscreteSchedule
    noise: GlobalNoise
    v_prediction: bool = False
    callback: UpdateCallback | None = None
    mask: torch.Tensor | None = None
    nmask: torch.Tensor | None = None
    init_latent: torch.Tensor | None = None
    last: torch.Tensor | None = field(default=None, repr=False)

    def before(self, x: torch.Tensor, timestep: int) -> torch.Tensor:
        """A1111's ``before_sample``: stop if asked, and paste the re-noised original into the kept area."""
        check_stop(self.guidance.stop)
        if self.mask is None:
            return x
        original = self.q_sample(self.init_latent, timestep, self.noise(self.init_latent))
        return original * self.mask + self.nmask * x

    def update(self, latent: torch.Tensor) -> None:
        """A1111's ``update_step``: keep the (masked) latent, count the step and report it."""
        if self.mask is not None:
            latent = self.init_latent * self.mask + self.nmask * latent
        self.last = latent
        self.guidance.step += 1
        if self.callback is not None:
            self.callback(self.guidance.step, latent)

    def q_sample(self, x0: torch.Tensor, timestep: int, noise: torch.Tensor) -> torch.Tensor:
        """ldm's ``q_sample``: ``x0`` noised to an integer timestep."""
        return (self.schedule.sqrt_alphas_cumprod[timestep] * x0
                + self.schedule.sqrt_one_minus_alphas_cumprod[timestep] * noise).float()

    def eps_and_x0(self, x: torch.Tensor, timestep: int, out: torch.Tensor, sqrt_one_minus_at: torch.Tensor,
                   a_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The noise and ``x0`` predictions from a guided output (ldm's v-prediction conversions for v models)."""
        if not self.v_prediction:
            return out, (x - sqrt_one_minus_at * out) / a_t.sqrt()
        sqrt_a, sqrt_1m_a = self.schedule.sqrt_alphas_cumprod[timestep], self.schedule.sqrt_one_minus_alphas_cumprod[timestep]
        return (sqrt_a * out + sqrt_1m_a * x).float(), (sqrt_a * x - sqrt_1m_a * out).float()


def _step_values(ddim: DdimSchedule, index: int) -> tuple[torch.Tensor, ...]:
    return ddim.alphas[index], ddim.alphas_prev[index], ddim.sigmas[index], ddim.sqrt_one_minus_alphas[index]


def _x_prev(run: CompVisRun, x: torch.Tensor, e_t: torch.Tensor, pred_x0: torch.Tensor, a_prev: torch.Tensor,
            sigma_t: torch.Tensor) -> torch.Tensor:
    """ldm's DDIM update from ``x0`` and the noise direction (its eta noise is drawn even when ``sigma_t`` is 0)."""
    dir_xt = (1. - a_prev - sigma_t ** 2).sqrt() * e_t
    noise = sigma_t * run.noise(x)
    return a_prev.sqrt() * pred_x0 + dir_xt + noise


@torch.no_grad()
def sample_ddim(run: CompVisRun, x: torch.Tensor, ddim: DdimSchedule, steps: int | None = None) -> torch.Tensor:
    """DDIM from ``x`` through the last ``steps`` of ``ddim``'s timesteps (all of them by default).

    Args:
        run: the hooks and the guided model.
        x: txt2img's unit noise, or img2img's ``stochastic_encode`` result.
        ddim: the schedule.
        steps: img2img's ``t_enc``: ldm's ``decode`` runs timesteps ``t_enc - 1 .. 0``.
    """
    timesteps = ddim.timesteps[:steps] if steps is not None else ddim.timesteps
    total = len(timesteps)
    for i, timestep in enumerate(reversed(timesteps)):
        index = total - i - 1
        x = run.before(x, timestep)
        a_t, a_prev, sigma_t, sqrt_one_minus_at = _step_values(ddim, index)
        out = run.guidance(x, torch.full((x.shape[0],), timestep, dtype=torch.long, device=x.device))
        e_t, pred_x0 = run.eps_and_x0(x, timestep, out, sqrt_one_minus_at, a_t)
        x = _x_prev(run, x, e_t, pred_x0, a_prev, sigma_t)
        run.update(pred_x0)
    return x


def stochastic_encode(ddim: DdimSchedule, x0: torch.Tensor, t_enc: int, noise: torch.Tensor) -> torch.Tensor:
    """ldm's ``stochastic_encode``: the encoded image noised to DDIM step ``t_enc``."""
    return ddim.sqrt_alphas[t_enc] * x0 + ddim.sqrt_one_minus_alphas[t_enc] * noise


@torch.no_grad()
def sample_plms(run: CompVisRun, x: torch.Tensor, ddim: DdimSchedule) -> torch.Tensor:
    """PLMS (pseudo linear multistep) over ``ddim``'s timesteps; the first step is a 2-call improved Euler step."""
    timesteps = list(reversed(ddim.timesteps))
    total = len(timesteps)
    old_eps: list[torch.Tensor] = []
    for i, timestep in enumerate(timesteps):
        index = total - i - 1
        next_timestep = timesteps[min(i + 1, total - 1)]
        x = run.before(x, timestep)
        a_t, a_prev, sigma_t, sqrt_one_minus_at = _step_values(ddim, index)

        def model_eps(latent: torch.Tensor, at: int) -> torch.Tensor:
            out = run.guidance(latent, torch.full((latent.shape[0],), at, dtype=torch.long, device=latent.device))
            return run.eps_and_x0(latent, at, out, sqrt_one_minus_at, a_t)[0] if run.v_prediction else out

        def step_with(e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pred_x0 = (x - sqrt_one_minus_at * e) / a_t.sqrt()
            return _x_prev(run, x, e, pred_x0, a_prev, sigma_t), pred_x0

        e_t = model_eps(x, timestep)
        if not old_eps:
            x_prev, _ = step_with(e_t)
            e_t_prime = (e_t + model_eps(x_prev, next_timestep)) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x, pred_x0 = step_with(e_t_prime)
        run.update(pred_x0)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
    return x
