"""A1111 v1.2.1's k-diffusion noise schedules, computed the way A1111 computes them.

A1111 wraps the ldm model in k-diffusion's ``CompVisDenoiser``, whose schedule is derived from the model's
``alphas_cumprod`` buffer:

* ldm builds the betas in float64 (``linspace(sqrt(beta_start), sqrt(beta_end), 1000) ** 2`` for SD's schedule),
  takes the cumulative product in float64 and stores it as a **float32** buffer; ``model.half()`` (every A1111
  run without ``--no-half``) turns that buffer into float16 before k-diffusion ever reads it.
* The 1000 model sigmas ``((1 - ac) / ac) ** 0.5`` and their logs are computed in the buffer's dtype.
* ``get_sigmas(n)`` maps ``t = linspace(999, 0, n)`` to sigmas by linear interpolation of log-sigma, in float32,
  with a trailing 0; the Karras schedule runs from the model's smallest to its largest sigma (rho 7) in float32.
* ``sigma_to_t`` inverts it by the same interpolation, giving a fractional timestep: k-diffusion calls the UNet
  with that unrounded ``t``.

Every step below repeats the same torch operations in the same dtypes, so the values are bit-identical to
k-diffusion's on CPU. Diffusers schedulers compute theirs differently (float32 betas, linear interpolation of
sigma, rounded or integer timesteps), which is enough to move images by several levels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from sdapi.engine.sampling.schedulers import BETA_DIST_ALPHA, BETA_DIST_BETA


@dataclass(frozen=True, eq=False)
class DiscreteSchedule:
    """The 1000 discrete noise levels of an eps/v DDPM model, as k-diffusion's ``DiscreteSchedule`` holds them.

    Args:
        alphas_cumprod: the model's buffer as A1111 holds it (float32, or float16 for a half-precision model).
        sigmas: ascending model sigmas (index = training timestep), in the same dtype.
        log_sigmas: their natural logs, same dtype.
        sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod: ldm's buffers of the same names (computed in float64,
            stored like ``alphas_cumprod``), for ldm's ``q_sample`` and its v-prediction conversions.
    """

    alphas_cumprod: torch.Tensor
    sigmas: torch.Tensor
    log_sigmas: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor

    @property
    def sigma_min(self) -> float:
        return self.sigmas[0].item()

    @property
    def sigma_max(self) -> float:
        return self.sigmas[-1].item()

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Sigma at a (fractional) timestep by linear interpolation of log-sigma (float32)."""
        t = t.float()
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """The fractional timestep of each sigma (float32), the inverse of :meth:`t_to_sigma`.

        Sigmas outside the model's range clamp to timestep 0 or 999; a sigma of 0 maps to 0.
        """
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)

    def get_sigmas(self, n: int) -> torch.Tensor:
        """k-diffusion's default schedule: ``n`` sigmas at ``t = linspace(999, 0, n)`` plus a trailing 0."""
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return _append_zero(self.t_to_sigma(t))

    def karras(self, n: int, rho: float = 7.0) -> torch.Tensor:
        """Karras et al. (2022) schedule between the model's sigma_min and sigma_max, plus a trailing 0."""
        return karras_sigmas(n, self.sigma_min, self.sigma_max, rho)


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """k-diffusion's ``get_sigmas_karras`` (float32, trailing 0)."""
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def discard_next_to_last(sigmas: torch.Tensor) -> torch.Tensor:
    """Drop the penultimate sigma (A1111's ``discard_next_to_last_sigma``)."""
    return torch.cat([sigmas[:-2], sigmas[-1:]])


def a1111_sigmas(schedule: DiscreteSchedule, steps: int, karras: bool = False,
                 discard_penultimate: bool = False, schedule_type: str | None = None,
                 sdxl: bool = False) -> torch.Tensor:
    """The sigmas A1111 samples txt2img with (``KDiffusionSampler.get_sigmas``), trailing 0 included.

    Args:
        schedule: the model's discrete schedule.
        steps: sampling steps.
        karras: the sampler's ``scheduler: karras`` option.
        discard_penultimate: the sampler's ``discard_next_to_last_sigma`` option (computes ``steps + 1`` sigmas
            and drops the penultimate one, leaving ``steps`` model steps).
        schedule_type: a later A1111 schedule type chosen by the request (``exponential``, …); ``None``: the
            sampler's own (v1.2.1's).
        sdxl: an SDXL model (Align Your Steps has its own table).

    Returns:
        float32 tensor of ``steps + 1`` sigmas, descending, last one 0 (KL Optimal ends at sigma_min instead).
    """
    n = steps + 1 if discard_penultimate else steps
    if schedule_type is not None:
        sigmas = schedule_type_sigmas(schedule, schedule_type, n, sdxl)
    else:
        sigmas = schedule.karras(n) if karras else schedule.get_sigmas(n)
    return discard_next_to_last(sigmas) if discard_penultimate else sigmas


@dataclass(frozen=True)
class DdimSchedule:
    """ldm's DDIM schedule for ``steps`` (``make_schedule`` with ``ddim_discretize="uniform"``), as float32 arrays.

    Args:
        timesteps: the model timesteps, ascending (``range(0, 1000, 1000 // steps) + 1``; there can be more of them
            than ``steps`` when 1000 is not a multiple, as in ldm).
        alphas, alphas_prev: ``alphas_cumprod`` at each timestep and at the previous one (``alphas_cumprod[0]`` for
            the first).
        sqrt_alphas, sqrt_one_minus_alphas: ``sqrt(alphas)`` and ``sqrt(1 - alphas)``, computed in the model
            buffer's dtype as ldm does.
        sigmas: DDIM's noise per step for ``eta`` (zeros at A1111's default ``eta_ddim`` of 0).
    """

    timesteps: tuple[int, ...]
    alphas: torch.Tensor
    alphas_prev: torch.Tensor
    sqrt_alphas: torch.Tensor
    sqrt_one_minus_alphas: torch.Tensor
    sigmas: torch.Tensor


def ddim_schedule(schedule: DiscreteSchedule, steps: int, eta: float = 0.0) -> DdimSchedule:
    """ldm's ``DDIMSampler.make_schedule(steps, "uniform", eta)`` over the model's ``alphas_cumprod``."""
    total = len(schedule.alphas_cumprod)
    timesteps = np.asarray(list(range(0, total, total // steps))) + 1
    ac = schedule.alphas_cumprod
    alphas = ac[torch.from_numpy(timesteps)]
    alphas_prev = torch.cat([ac[:1], ac[torch.from_numpy(timesteps[:-1])]]).float()
    a64, prev64 = alphas.double(), alphas_prev.double()
    sigmas = eta * torch.sqrt((1 - prev64) / (1 - a64) * (1 - a64 / prev64))
    return DdimSchedule(tuple(int(t) for t in timesteps), alphas.float(), alphas_prev, torch.sqrt(alphas).float(),
                        torch.sqrt(1. - alphas).float(), sigmas.float())


@dataclass(frozen=True)
class UniPcTimes:
    """A1111 v1.2.1's UniPC time grid (``skip_type="time_uniform"``) with the noise-schedule values at each time.

    A1111's UniPC (after DPM-Solver's ``NoiseScheduleVP("discrete")``) walks continuous time
    ``t = linspace(1, 1/1000, steps + 1)``; ``log(alpha_t)`` is interpolated linearly from
    ``0.5 * log(alphas_cumprod)`` (float32) over the keypoints ``(i + 1) / 1000``, and the UNet is called with
    ``(t - 1/1000) * 1000``: fractional timesteps from 999 down to 0.

    Args:
        log_alpha, alpha, sigma, lam: ``log(alpha_t)``, ``alpha_t``, ``sigma_t`` and ``lambda_t`` per grid time,
            each a float32 tensor of ``steps + 1`` values, computed as ``marginal_*`` computes them.
        model_t: the UNet timestep of each grid time.
    """

    log_alpha: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    lam: torch.Tensor
    model_t: torch.Tensor

    @property
    def kdiffusion_sigmas(self) -> torch.Tensor:
        """The same grid as k-diffusion sigmas (``sigma_t / alpha_t``)."""
        return self.sigma / self.alpha


def unipc_times(schedule: DiscreteSchedule, steps: int) -> UniPcTimes:
    """A1111's UniPC grid for ``steps`` steps over the model's ``alphas_cumprod`` (held in float32, as A1111 does)."""
    log_alphas = 0.5 * torch.log(schedule.alphas_cumprod.float())
    n = len(log_alphas)
    t_array = torch.linspace(0.0, 1.0, n + 1)[1:]
    t = torch.linspace(1.0, 1.0 / n, steps + 1)
    # DPM-Solver's interpolate_fn: the segment [xp[j-1], xp[j]] with xp[j] the first keypoint >= t, extended
    # linearly beyond both ends.
    j = torch.searchsorted(t_array, t).clamp(1, n - 1)
    start_x, end_x, start_y, end_y = t_array[j - 1], t_array[j], log_alphas[j - 1], log_alphas[j]
    log_alpha = start_y + (t - start_x) * (end_y - start_y) / (end_x - start_x)
    sigma = torch.sqrt(1. - torch.exp(2. * log_alpha))
    lam = log_alpha - 0.5 * torch.log(1. - torch.exp(2. * log_alpha))
    return UniPcTimes(log_alpha, torch.exp(log_alpha), sigma, lam, (t - 1.0 / n) * 1000.0)


def ldm_alphas_cumprod(beta_start: float, beta_end: float, num_train_timesteps: int = 1000,
                       beta_schedule: str = "scaled_linear", trained_betas=None) -> np.ndarray:
    """ldm's ``alphas_cumprod`` in float64 (before it is stored as a float32 buffer).

    ``scaled_linear`` is ldm's "linear" (linear in sqrt(beta)); ``linear`` is ldm's "sqrt_linear".

    Raises:
        ValueError: a beta schedule ldm has no float64 equivalent for here.
    """
    if trained_betas is not None:
        betas = np.asarray(trained_betas, dtype=np.float64)
    elif beta_schedule == "scaled_linear":
        betas = (torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float64)
                 ** 2).numpy()
    elif beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64).numpy()
    else:
        raise ValueError(f"no ldm schedule for beta_schedule {beta_schedule!r}")
    return np.cumprod(1.0 - betas, axis=0)


@functools.lru_cache(maxsize=32)
def _cached_schedule(beta_start: float, beta_end: float, num_train_timesteps: int, beta_schedule: str,
                     trained_betas: tuple | None, half: bool) -> DiscreteSchedule:
    ac64 = ldm_alphas_cumprod(beta_start, beta_end, num_train_timesteps, beta_schedule, trained_betas)
    dtype = torch.float16 if half else torch.float32

    def buffer(values: np.ndarray) -> torch.Tensor:
        # ldm registers float32 buffers; model.half() turns them into float16.
        return torch.tensor(values, dtype=torch.float32).to(dtype)

    ac = buffer(ac64)
    sigmas = ((1 - ac) / ac) ** 0.5
    return DiscreteSchedule(alphas_cumprod=ac, sigmas=sigmas, log_sigmas=sigmas.log(),
                            sqrt_alphas_cumprod=buffer(np.sqrt(ac64)),
                            sqrt_one_minus_alphas_cumprod=buffer(np.sqrt(1. - ac64)))


def model_schedule(config: Mapping[str, Any], half: bool = False) -> DiscreteSchedule | None:
    """The k-diffusion schedule A1111 would build for a checkpoint with this diffusers scheduler config.

    Cached per (betas, precision), so a request pays nothing after the first.

    Args:
        config: a diffusers scheduler config (``beta_start``, ``beta_end``, ``beta_schedule``, ...).
        half: the model runs in float16, so A1111 v1.2.1's ``model.half()`` downcast ``alphas_cumprod`` too.

    Returns:
        The schedule, or ``None`` where A1111's cannot be reproduced (zero-terminal-SNR rescaling, cosine betas).
    """
    if config.get("rescale_betas_zero_snr"):
        return None
    trained = config.get("trained_betas")
    try:
        return _cached_schedule(float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02)),
                                int(config.get("num_train_timesteps", 1000)),
                                str(config.get("beta_schedule", "linear")),
                                tuple(float(b) for b in trained) if trained is not None else None, bool(half))
    except ValueError:
        return None


# --------------------------------------------------------------------------- later A1111's schedule types

# NVIDIA's Align Your Steps tables for 10 steps (A1111 v1.10.1 interpolates them log-linearly to other counts).
_AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
_AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def _from_floats(values) -> torch.Tensor:
    # A1111 builds these lists in Python floats and converts them once (``torch.FloatTensor``).
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def exponential_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """k-diffusion's ``get_sigmas_exponential``."""
    return _append_zero(torch.linspace(np.log(sigma_max), np.log(sigma_min), n).exp())


def polyexponential_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """k-diffusion's ``get_sigmas_polyexponential``."""
    ramp = torch.linspace(1, 0, n) ** rho
    return _append_zero(torch.exp(ramp * (np.log(sigma_max) - np.log(sigma_min)) + np.log(sigma_min)))


def timestep_sigmas(schedule: DiscreteSchedule, n: int, sigma_min: float, sigma_max: float,
                    sgm: bool) -> torch.Tensor:
    """A1111's "Normal" (``n`` timesteps from sigma_max's to sigma_min's) and "SGM Uniform" (``n + 1`` of them,
    the last dropped), mapped back to sigmas, trailing 0."""
    start = schedule.sigma_to_t(torch.tensor(sigma_max))
    end = schedule.sigma_to_t(torch.tensor(sigma_min))
    timesteps = torch.linspace(start.item(), end.item(), n + 1)[:-1] if sgm else torch.linspace(start.item(),
                                                                                                 end.item(), n)
    return _from_floats([*(schedule.t_to_sigma(t).item() for t in timesteps), 0.0])


def kl_optimal_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """A1111's "KL Optimal": ``n + 1`` sigmas evenly spaced in arctan, ending at sigma_min (no trailing 0)."""
    alpha_min, alpha_max = torch.arctan(torch.tensor(sigma_min)), torch.arctan(torch.tensor(sigma_max))
    steps = torch.arange(n + 1)
    return torch.tan(steps / n * alpha_min + (1.0 - steps / n) * alpha_max)


def align_your_steps_sigmas(n: int, sdxl: bool) -> torch.Tensor:
    """A1111's "Align Your Steps": NVIDIA's 10-step table, log-linearly interpolated to ``n``, trailing 0."""
    table = _AYS_SDXL if sdxl else _AYS_SD15
    if n == len(table):
        return _from_floats([*table, 0.0])
    xs = np.linspace(0, 1, len(table))
    ys = np.log(table[::-1])
    interpolated = np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1]
    return _from_floats([*interpolated, 0.0])


def simple_sigmas(schedule: DiscreteSchedule, n: int) -> torch.Tensor:
    """A1111's "Simple": every ``1000 / n``-th model sigma from the top, trailing 0."""
    stride = len(schedule.sigmas) / n
    return _from_floats([*(schedule.sigmas[-(1 + int(i * stride))].item() for i in range(n)), 0.0])


def ddim_sigmas(schedule: DiscreteSchedule, n: int) -> torch.Tensor:
    """A1111's "DDIM" schedule type: the model sigmas at ``1, 1 + 1000 // n, …``, descending, trailing 0."""
    stride = max(len(schedule.sigmas) // n, 1)
    picked = [schedule.sigmas[i].item() for i in range(1, len(schedule.sigmas), stride)]
    return _from_floats([*picked[::-1], 0.0])


def beta_sigmas(n: int, sigma_min: float, sigma_max: float, alpha: float, beta: float) -> torch.Tensor:
    """A1111's "Beta" (Lee et al. 2024): sigmas at the beta distribution's quantiles, trailing 0."""
    from scipy import stats  # importing scipy.stats takes a while; only this schedule type needs it

    quantiles = [stats.beta.ppf(x, alpha, beta) for x in 1 - np.linspace(0, 1, n)]
    return _from_floats([*(sigma_min + q * (sigma_max - sigma_min) for q in quantiles), 0.0])


def schedule_type_sigmas(schedule: DiscreteSchedule, name: str, n: int, sdxl: bool = False) -> torch.Tensor:
    """The sigmas of a later A1111 schedule type (``karras``, ``exponential``, … by name) for ``n`` steps, between
    the model's own sigma range (A1111 v1.10.1's ``KDiffusionSampler.get_sigmas``)."""
    sigma_min, sigma_max = schedule.sigma_min, schedule.sigma_max
    functions = {
        "uniform": lambda: schedule.get_sigmas(n),
        "karras": lambda: karras_sigmas(n, sigma_min, sigma_max),
        "exponential": lambda: exponential_sigmas(n, sigma_min, sigma_max),
        "polyexponential": lambda: polyexponential_sigmas(n, sigma_min, sigma_max),
        "sgm_uniform": lambda: timestep_sigmas(schedule, n, sigma_min, sigma_max, sgm=True),
        "kl_optimal": lambda: kl_optimal_sigmas(n, sigma_min, sigma_max),
        "align_your_steps": lambda: align_your_steps_sigmas(n, sdxl),
        "simple": lambda: simple_sigmas(schedule, n),
        "normal": lambda: timestep_sigmas(schedule, n, sigma_min, sigma_max, sgm=False),
        "ddim": lambda: ddim_sigmas(schedule, n),
        "beta": lambda: beta_sigmas(n, sigma_min, sigma_max, BETA_DIST_ALPHA, BETA_DIST_BETA),
    }
    return functions[name]()
