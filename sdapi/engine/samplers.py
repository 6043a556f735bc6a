"""The sampler registry: A1111 v1.2.1's 20 samplers as a data table, and how each is built in diffusers.

Where A1111 runs k-diffusion (every sampler but DDIM, PLMS and UniPC) the latent starts at ``noise * sigma_max``
on a ``linspace(999, 0)`` timestep grid, so those rows use ``timestep_spacing="linspace"`` and the engine scales
the initial latent into the scheduler's own space. DDIM and PLMS are CompVis samplers: ``leading`` spacing with
``steps_offset=1`` (ldm's uniform discretisation) and plain unit noise.

Rows with a ``kdiffusion_loop`` (DPM++ 2S a, DPM fast, DPM adaptive) have no diffusers equivalent: they run our
own implementation of the k-diffusion function (:mod:`sdapi.engine.kdiffusion`) and have no scheduler.

Rows marked ``a1111_sigmas=True`` do not sample on the diffusers scheduler's own schedule: after ``set_timesteps``
the engine overwrites it (:func:`install_a1111_sigmas`) with the one A1111 computes (k-diffusion's discrete
schedule, Karras or penultimate-discarded as the row's options say, or A1111's UniPC time grid; see
:mod:`sdapi.engine.sigmas`) and with the matching *fractional* timesteps, so the UNet sees A1111's unrounded
``t``. This works only for scheduler classes whose array layout is known here (``SCHEDULE_LAYOUTS``).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from sdapi.engine.sigmas import a1111_sigmas, model_schedule, unipc_sigmas
from sdapi.errors import NotFound


@dataclass(frozen=True)
class SamplerSpec:
    """One A1111 sampler.

    Args:
        name: A1111 display name, matched exactly and case-sensitively.
        aliases: A1111's k-diffusion aliases (listed by ``/samplers``, not accepted as names, as in v1.2.1).
        options: ``/samplers`` options, values rendered as strings like A1111's pydantic model did.
        scheduler: diffusers scheduler class name (``None`` for rows with a ``kdiffusion_loop``).
        kwargs: scheduler config overrides.
        kdiffusion: A1111 runs it through k-diffusion (initial latent ``noise * sigma_max``).
        ancestral: draws fresh noise every step from the image's generator stream.
        second_order: calls the model twice per step (A1111 doubles its prompt schedule for these).
        adjust_steps: A1111's DDIM/PLMS/UniPC step fix-up when ``999 / (1000 // steps)`` is whole.
        exact: the row (its diffusers scheduler or own loop) implements the same algorithm as A1111's sampler.
        a1111_sigmas: replace the scheduler's schedule with A1111's exact sigmas and fractional timesteps
            (needs a ``SCHEDULE_LAYOUTS`` entry for ``scheduler``).
        kdiffusion_loop: key of our own k-diffusion sampling function in
            :data:`sdapi.engine.kdiffusion.KDIFFUSION_LOOPS`; such rows use no diffusers scheduler.
    """

    name: str
    aliases: tuple[str, ...]
    scheduler: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    kdiffusion: bool = True
    ancestral: bool = False
    second_order: bool = False
    adjust_steps: bool = False
    exact: bool = True
    a1111_sigmas: bool = False
    kdiffusion_loop: str | None = None

    @property
    def karras(self) -> bool:
        return self.options.get("scheduler") == "karras"

    @property
    def discard_penultimate_sigma(self) -> bool:
        return self.options.get("discard_next_to_last_sigma") == "True"

    @property
    def doubles_prompt_schedule(self) -> bool:
        """A1111 v1.2.1 builds prompt schedules for twice the steps for these (its list misses the Karras DPM2s)."""
        return bool(self.aliases) and self.aliases[0] in _DOUBLED_SCHEDULE_ALIASES


# v1.2.1's processing.py tests the first alias against this list, so DPM2 Karras and DPM2 a Karras (second order
# too) keep single-length schedules.
_DOUBLED_SCHEDULE_ALIASES = frozenset({"k_dpmpp_2s_a", "k_dpmpp_2s_a_ka", "k_dpmpp_sde", "k_dpmpp_sde_ka", "k_dpm_2",
                                       "k_dpm_2_a", "k_heun"})


_LIN = {"timestep_spacing": "linspace"}
_KARRAS = {"use_karras_sigmas": True}
_DISCARD = {"discard_next_to_last_sigma": "True"}
_DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero", **_LIN}
_COMPVIS = {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False}

SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("Euler a", ("k_euler_a", "k_euler_ancestral"), "EulerAncestralDiscreteScheduler", _LIN, ancestral=True,
                a1111_sigmas=True),
    SamplerSpec("Euler", ("k_euler",), "EulerDiscreteScheduler", _LIN, a1111_sigmas=True),
    SamplerSpec("LMS", ("k_lms",), "LMSDiscreteScheduler", _LIN, a1111_sigmas=True),
    SamplerSpec("Heun", ("k_heun",), "HeunDiscreteScheduler", _LIN, second_order=True, a1111_sigmas=True),
    # With A1111's sigmas (penultimate dropped) and k-diffusion's log-midpoints, KDPM2 is k-diffusion's DPM2.
    SamplerSpec("DPM2", ("k_dpm_2",), "KDPM2DiscreteScheduler", _LIN, _DISCARD, second_order=True,
                a1111_sigmas=True),
    SamplerSpec("DPM2 a", ("k_dpm_2_a",), "KDPM2AncestralDiscreteScheduler", _LIN, _DISCARD, ancestral=True,
                second_order=True, a1111_sigmas=True),
    # k-diffusion's DPM++ 2S a (single-step ancestral) has no diffusers scheduler: our own loop.
    SamplerSpec("DPM++ 2S a", ("k_dpmpp_2s_a",), None, ancestral=True, second_order=True,
                kdiffusion_loop="dpmpp_2s_ancestral"),
    SamplerSpec("DPM++ 2M", ("k_dpmpp_2m",), "DPMSolverMultistepScheduler", _DPMPP_2M, a1111_sigmas=True),
    SamplerSpec("DPM++ SDE", ("k_dpmpp_sde",), "DPMSolverSDEScheduler", _LIN, ancestral=True, second_order=True,
                a1111_sigmas=True),
    # DPM-Solver with a fixed budget of model calls and with adaptive step size (its own step count); both are
    # ancestral at A1111's default eta of 1. Our own loops.
    SamplerSpec("DPM fast", ("k_dpm_fast",), None, ancestral=True, kdiffusion_loop="dpm_fast"),
    SamplerSpec("DPM adaptive", ("k_dpm_ad",), None, ancestral=True, kdiffusion_loop="dpm_adaptive"),
    SamplerSpec("LMS Karras", ("k_lms_ka",), "LMSDiscreteScheduler", {**_LIN, **_KARRAS}, {"scheduler": "karras"},
                a1111_sigmas=True),
    SamplerSpec("DPM2 Karras", ("k_dpm_2_ka",), "KDPM2DiscreteScheduler", {**_LIN, **_KARRAS},
                {"scheduler": "karras", **_DISCARD}, second_order=True, a1111_sigmas=True),
    SamplerSpec("DPM2 a Karras", ("k_dpm_2_a_ka",), "KDPM2AncestralDiscreteScheduler", {**_LIN, **_KARRAS},
                {"scheduler": "karras", **_DISCARD}, ancestral=True, second_order=True, a1111_sigmas=True),
    SamplerSpec("DPM++ 2S a Karras", ("k_dpmpp_2s_a_ka",), None, options={"scheduler": "karras"}, ancestral=True,
                second_order=True, kdiffusion_loop="dpmpp_2s_ancestral"),
    SamplerSpec("DPM++ 2M Karras", ("k_dpmpp_2m_ka",), "DPMSolverMultistepScheduler", {**_DPMPP_2M, **_KARRAS},
                {"scheduler": "karras"}, a1111_sigmas=True),
    SamplerSpec("DPM++ SDE Karras", ("k_dpmpp_sde_ka",), "DPMSolverSDEScheduler", {**_LIN, **_KARRAS},
                {"scheduler": "karras"}, ancestral=True, second_order=True, a1111_sigmas=True),
    SamplerSpec("DDIM", (), "DDIMScheduler", {**_COMPVIS, "clip_sample": False}, kdiffusion=False, adjust_steps=True),
    SamplerSpec("PLMS", (), "PNDMScheduler", {**_COMPVIS, "skip_prk_steps": True}, kdiffusion=False,
                adjust_steps=True),
    # A1111's UniPC: variant bh1, order 3, time-uniform skip over t in [1, 1/1000]: a grid ending at sigma_min
    # (t = 1/1000), which also avoids diffusers' bh1 NaN on a final sigma of exactly 0. The exact grid (log-alpha
    # interpolated, fractional timesteps) replaces diffusers' rounded linspace one.
    SamplerSpec("UniPC", (), "UniPCMultistepScheduler",
                {"solver_type": "bh1", "solver_order": 3, "lower_order_final": True, "final_sigmas_type": "sigma_min",
                 **_LIN}, kdiffusion=False, adjust_steps=True, a1111_sigmas=True),
)

SAMPLERS_BY_NAME: dict[str, SamplerSpec] = {s.name: s for s in SAMPLERS}


def find_sampler(name: str | None) -> SamplerSpec:
    """Resolve a sampler exactly as A1111 v1.2.1's ``validate_sampler_name`` does (display names only).

    Raises:
        NotFound: ``Sampler not found`` (404), as A1111.
    """
    spec = SAMPLERS_BY_NAME.get(name) if name is not None else None
    if spec is None:
        raise NotFound("Sampler not found")
    return spec


def sampler_items() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/samplers`` body."""
    return [{"name": s.name, "aliases": list(s.aliases), "options": dict(s.options)} for s in SAMPLERS]


def effective_steps(spec: SamplerSpec, steps: int) -> int:
    """A1111's ``adjust_steps_if_invalid`` for DDIM/PLMS/UniPC: 999/(1000//n) whole → that + 1 steps."""
    if not spec.adjust_steps or steps <= 0:
        return steps
    valid = 999 / (1000 // steps)
    return int(valid) + 1 if valid == int(valid) else steps


def build_scheduler(spec: SamplerSpec, base_config: dict[str, Any], seed: int | Sequence[int]):
    """A fresh diffusers scheduler for one request, from the checkpoint's own scheduler config.

    Schedulers are constructed once per (class, config) and copied per request: some constructors precompute a
    full 1000-step schedule element by element (KDPM2 takes about 0.2 s, DPM++ SDE and LMS Karras 20-40 ms on a
    CPU core), while a copy takes well under a millisecond.

    Args:
        spec: the registry row.
        base_config: the loaded pipeline's ``scheduler.config`` (betas, prediction type).
        seed: the batch's seeds (or the first one); they seed DPM++ SDE's Brownian noise, which otherwise draws
            from the global RNG. A list gives one Brownian tree per image, as A1111 does.

    Raises:
        ValueError: a row that samples with its own k-diffusion loop (no scheduler).
    """
    if spec.scheduler is None:
        raise ValueError(f"{spec.name} samples with sdapi's own k-diffusion loop, not a diffusers scheduler")
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    # A config written for one scheduler class may carry another's keys (PNDM's skip_prk_steps...).
    config.update(spec.kwargs)
    scheduler = copy.deepcopy(_scheduler_template(spec.scheduler, json.dumps(config, sort_keys=True, default=repr)))
    if spec.scheduler == "DPMSolverSDEScheduler":
        seed = seed if isinstance(seed, int) else [int(s) for s in seed]
        scheduler.register_to_config(noise_sampler_seed=seed)
        scheduler.noise_sampler_seed = seed
    return scheduler


@functools.lru_cache(maxsize=64)
def _scheduler_template(class_name: str, config_json: str):
    """A scheduler built from a config (never handed out: callers get copies)."""
    import diffusers

    return getattr(diffusers, class_name).from_config(json.loads(config_json))


# --- A1111's exact schedule inside diffusers schedulers -------------------------------------------------------
#
# Each layout writes A1111's schedule into one scheduler family the way that family's own ``set_timesteps`` lays
# its arrays out. ``sigmas`` are descending float32 sigmas (k-diffusion space, ``steps + 1`` of them: a trailing 0
# for k-diffusion, sigma_min for UniPC) and ``timesteps`` the model timestep of each; ``to_t`` maps further sigmas
# (second-order midpoints) to timesteps. Everything a family derives from its schedule is rewritten here; the
# step counters are reset and the begin index pinned to 0, so no step is looked up by (now fractional) timestep.

Timesteps = Callable[[torch.Tensor], torch.Tensor]


def _set(scheduler, name: str, value: torch.Tensor) -> None:
    """Replace a scheduler array, keeping the device the scheduler put the old one on."""
    old = getattr(scheduler, name)
    setattr(scheduler, name, value.to(old.device) if isinstance(old, torch.Tensor) else value)


def _two_per_step(per_step: torch.Tensor, midpoints: torch.Tensor) -> torch.Tensor:
    """``[a0, m0, a1, m1, ..., a(n-2), m(n-2), a(n-1)]``: a second-order sampler's model-call sequence."""
    pairs = torch.stack([per_step[:-1], midpoints[: len(per_step) - 1]], dim=1).flatten()
    return torch.cat([pairs, per_step[-1:]])


def _repeat_inner(x: torch.Tensor) -> torch.Tensor:
    """``[x0, x1, x1, ..., x(n-1), x(n-1), xn]``: the interleaved arrays of diffusers' Heun/SDE schedulers."""
    return torch.cat([x[:1], x[1:-1].repeat_interleave(2), x[-1:]])


def _repeat_all(x: torch.Tensor) -> torch.Tensor:
    """``[x0, x1, x1, ..., xn, xn, xn]``: the interleaved arrays of diffusers' KDPM2 schedulers."""
    return torch.cat([x[:1], x[1:].repeat_interleave(2), x[-1:]])


def _log_midpoints(sigmas: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """k-diffusion's DPM2 midpoints ``sigma.log().lerp(target.log(), 0.5).exp()``; 0 where the target is 0."""
    mids = sigmas.log().lerp(targets.log(), 0.5).exp()
    return torch.where(targets > 0, mids, torch.zeros_like(mids))


def _layout_one_per_step(scheduler, sigmas: torch.Tensor, timesteps: torch.Tensor, to_t: Timesteps) -> None:
    # Euler, Euler a, LMS, DPM-Solver multistep, UniPC: sigmas[i] -> sigmas[i + 1], one model call at sigmas[i].
    _set(scheduler, "sigmas", sigmas.clone())
    _set(scheduler, "timesteps", timesteps[:-1].clone())


def _layout_heun(scheduler, sigmas: torch.Tensor, timesteps: torch.Tensor, to_t: Timesteps) -> None:
    # Heun's second call is at sigmas[i + 1]; the last step (to 0) is a single Euler call.
    t = timesteps[:-1]
    _set(scheduler, "sigmas", _repeat_inner(sigmas))
    _set(scheduler, "timesteps", torch.cat([t[:1], t[1:].repeat_interleave(2)]))


def _layout_dpmpp_sde(scheduler, sigmas: torch.Tensor, timesteps: torch.Tensor, to_t: Timesteps) -> None:
    # DPM++ SDE's second call is at sigma_fn(t + h / 2), computed as k-diffusion (and the scheduler's step) does.
    t = sigmas[:-2].log().neg()
    t_next = sigmas[1:-1].log().neg()
    mids = (t + (t_next - t) * 0.5).neg().exp()
    _set(scheduler, "sigmas", _repeat_inner(sigmas))
    _set(scheduler, "timesteps", _two_per_step(timesteps[:-1], to_t(mids)))


def _layout_kdpm2(scheduler, sigmas: torch.Tensor, timesteps: torch.Tensor, to_t: Timesteps) -> None:
    # DPM2's second call is at the log-midpoint of sigmas[i] and sigmas[i + 1]; KDPM2 keeps midpoint i at
    # (layout) index i + 1 of sigmas_interpol. The last step (to 0) is a single Euler call (midpoint 0).
    mids = _log_midpoints(sigmas[:-1], sigmas[1:])
    _set(scheduler, "sigmas", _repeat_all(sigmas))
    _set(scheduler, "sigmas_interpol", _repeat_all(torch.cat([mids.new_zeros(1), mids])))
    _set(scheduler, "timesteps", _two_per_step(timesteps[:-1], to_t(mids[:-1])))


def _layout_kdpm2_ancestral(scheduler, sigmas: torch.Tensor, timesteps: torch.Tensor, to_t: Timesteps) -> None:
    # DPM2 a: k-diffusion's get_ancestral_step (eta 1) per step, midpoint between sigmas[i] and sigma_down;
    # KDPM2Ancestral keeps step i's values at (layout) index i.
    s_from, s_to = sigmas[:-1], sigmas[1:]
    up = torch.minimum(s_to, (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5)
    down = (s_to ** 2 - up ** 2) ** 0.5
    mids = _log_midpoints(s_from, down)
    zero = sigmas.new_zeros(1)
    _set(scheduler, "sigmas", _repeat_all(sigmas))
    _set(scheduler, "sigmas_interpol", _repeat_all(torch.cat([mids, zero])))
    _set(scheduler, "sigmas_up", _repeat_all(torch.cat([up, zero])))
    _set(scheduler, "sigmas_down", _repeat_all(torch.cat([down, zero])))
    _set(scheduler, "timesteps", _two_per_step(timesteps[:-1], to_t(mids[:-1])))


SCHEDULE_LAYOUTS: dict[str, Callable[[Any, torch.Tensor, torch.Tensor, Timesteps], None]] = {
    "EulerDiscreteScheduler": _layout_one_per_step,
    "EulerAncestralDiscreteScheduler": _layout_one_per_step,
    "LMSDiscreteScheduler": _layout_one_per_step,
    "DPMSolverMultistepScheduler": _layout_one_per_step,
    "UniPCMultistepScheduler": _layout_one_per_step,
    "HeunDiscreteScheduler": _layout_heun,
    "DPMSolverSDEScheduler": _layout_dpmpp_sde,
    "KDPM2DiscreteScheduler": _layout_kdpm2,
    "KDPM2AncestralDiscreteScheduler": _layout_kdpm2_ancestral,
}


def install_a1111_sigmas(spec: SamplerSpec, scheduler, steps: int, half: bool = False) -> bool:
    """Give a scheduler (after ``set_timesteps(steps)``) A1111's exact sigmas and fractional timesteps.

    k-diffusion rows get ``KDiffusionSampler.get_sigmas`` (Karras/discard per the row's options); UniPC gets
    A1111's time-uniform UniPC schedule.

    Args:
        spec: the registry row.
        scheduler: the row's diffusers scheduler.
        steps: sampling steps (after ``effective_steps``).
        half: the UNet runs in float16 (A1111 v1.2.1 then had float16 ``alphas_cumprod``).

    Returns:
        Whether the schedule was replaced; ``False`` leaves the scheduler's own (row not marked, unknown layout,
        or a noise schedule A1111's cannot be rebuilt for).
    """
    layout = SCHEDULE_LAYOUTS.get(type(scheduler).__name__)
    if not spec.a1111_sigmas or layout is None or steps <= 0:
        return False
    schedule = model_schedule(scheduler.config, half)
    if schedule is None:
        return False
    if spec.kdiffusion:
        sigmas = a1111_sigmas(schedule, steps, spec.karras, spec.discard_penultimate_sigma)
        timesteps = schedule.sigma_to_t(sigmas)
    else:
        sigmas, timesteps = unipc_sigmas(schedule, steps)
    layout(scheduler, sigmas, timesteps, schedule.sigma_to_t)
    scheduler.num_inference_steps = len(sigmas) - 1
    scheduler._step_index = None
    scheduler.set_begin_index(0)
    return True
