"""The sampler registry: A1111 v1.2.1's 20 samplers as a data table, and how each is built in diffusers.

Where A1111 runs k-diffusion (every sampler but DDIM, PLMS and UniPC) the latent starts at ``noise * sigma_max``
on a ``linspace(999, 0)`` timestep grid, so those rows use ``timestep_spacing="linspace"`` and the engine scales
the initial latent into the scheduler's own space. DDIM and PLMS are CompVis samplers: ``leading`` spacing with
``steps_offset=1`` (ldm's uniform discretisation) and plain unit noise.

Rows marked ``exact=False`` have no exact diffusers equivalent; the comment names the closest choice made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdapi.errors import NotFound


@dataclass(frozen=True)
class SamplerSpec:
    """One A1111 sampler.

    Args:
        name: A1111 display name, matched exactly and case-sensitively.
        aliases: A1111's k-diffusion aliases (listed by ``/samplers``, not accepted as names, as in v1.2.1).
        options: ``/samplers`` options, values rendered as strings like A1111's pydantic model did.
        scheduler: diffusers scheduler class name.
        kwargs: scheduler config overrides.
        kdiffusion: A1111 runs it through k-diffusion (initial latent ``noise * sigma_max``).
        ancestral: draws fresh noise every step from the image's generator stream.
        second_order: calls the model twice per step (A1111 doubles its prompt schedule for these).
        adjust_steps: A1111's DDIM/PLMS/UniPC step fix-up when ``999 / (1000 // steps)`` is whole.
        exact: the diffusers scheduler implements the same algorithm as A1111's sampler.
    """

    name: str
    aliases: tuple[str, ...]
    scheduler: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    kdiffusion: bool = True
    ancestral: bool = False
    second_order: bool = False
    adjust_steps: bool = False
    exact: bool = True


_LIN = {"timestep_spacing": "linspace"}
_KARRAS = {"use_karras_sigmas": True}
_DISCARD = {"discard_next_to_last_sigma": "True"}
_DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero", **_LIN}
# k-diffusion's DPM++ 2S a is a single-step ancestral sampler; diffusers has none: singlestep order 2 is closest.
_DPMPP_2S = {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero"}
_COMPVIS = {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False}

SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("Euler a", ("k_euler_a", "k_euler_ancestral"), "EulerAncestralDiscreteScheduler", _LIN, ancestral=True),
    SamplerSpec("Euler", ("k_euler",), "EulerDiscreteScheduler", _LIN),
    SamplerSpec("LMS", ("k_lms",), "LMSDiscreteScheduler", _LIN),
    SamplerSpec("Heun", ("k_heun",), "HeunDiscreteScheduler", _LIN, second_order=True),
    # diffusers' KDPM2 interpolates its own mid sigmas and keeps the penultimate sigma: closest, not exact.
    SamplerSpec("DPM2", ("k_dpm_2",), "KDPM2DiscreteScheduler", _LIN, _DISCARD, second_order=True, exact=False),
    SamplerSpec("DPM2 a", ("k_dpm_2_a",), "KDPM2AncestralDiscreteScheduler", _LIN, _DISCARD, ancestral=True,
                second_order=True, exact=False),
    SamplerSpec("DPM++ 2S a", ("k_dpmpp_2s_a",), "DPMSolverSinglestepScheduler", _DPMPP_2S, second_order=True,
                exact=False),
    SamplerSpec("DPM++ 2M", ("k_dpmpp_2m",), "DPMSolverMultistepScheduler", _DPMPP_2M),
    SamplerSpec("DPM++ SDE", ("k_dpmpp_sde",), "DPMSolverSDEScheduler", _LIN, ancestral=True, second_order=True),
    # DPM fast (DPM-Solver with a fixed step budget) has no diffusers scheduler: singlestep order 3 is closest.
    SamplerSpec("DPM fast", ("k_dpm_fast",), "DPMSolverSinglestepScheduler",
                {"algorithm_type": "dpmsolver++", "solver_order": 3, "final_sigmas_type": "zero"}, exact=False),
    # DPM adaptive picks its own step count; closest fixed-step relative: multistep order 3.
    SamplerSpec("DPM adaptive", ("k_dpm_ad",), "DPMSolverMultistepScheduler",
                {"algorithm_type": "dpmsolver++", "solver_order": 3, "final_sigmas_type": "zero", **_LIN}, exact=False),
    SamplerSpec("LMS Karras", ("k_lms_ka",), "LMSDiscreteScheduler", {**_LIN, **_KARRAS}, {"scheduler": "karras"}),
    SamplerSpec("DPM2 Karras", ("k_dpm_2_ka",), "KDPM2DiscreteScheduler", {**_LIN, **_KARRAS},
                {"scheduler": "karras", **_DISCARD}, second_order=True, exact=False),
    SamplerSpec("DPM2 a Karras", ("k_dpm_2_a_ka",), "KDPM2AncestralDiscreteScheduler", {**_LIN, **_KARRAS},
                {"scheduler": "karras", **_DISCARD}, ancestral=True, second_order=True, exact=False),
    SamplerSpec("DPM++ 2S a Karras", ("k_dpmpp_2s_a_ka",), "DPMSolverSinglestepScheduler", {**_DPMPP_2S, **_KARRAS},
                {"scheduler": "karras"}, second_order=True, exact=False),
    SamplerSpec("DPM++ 2M Karras", ("k_dpmpp_2m_ka",), "DPMSolverMultistepScheduler", {**_DPMPP_2M, **_KARRAS},
                {"scheduler": "karras"}),
    SamplerSpec("DPM++ SDE Karras", ("k_dpmpp_sde_ka",), "DPMSolverSDEScheduler", {**_LIN, **_KARRAS},
                {"scheduler": "karras"}, ancestral=True, second_order=True),
    SamplerSpec("DDIM", (), "DDIMScheduler", {**_COMPVIS, "clip_sample": False}, kdiffusion=False, adjust_steps=True),
    SamplerSpec("PLMS", (), "PNDMScheduler", {**_COMPVIS, "skip_prk_steps": True}, kdiffusion=False,
                adjust_steps=True),
    # A1111's UniPC: variant bh1, order 3, time-uniform skip over t in [1, 1/1000]: a linspace grid ending at
    # sigma_min (t = 1/1000), which also avoids diffusers' bh1 NaN on a final sigma of exactly 0.
    SamplerSpec("UniPC", (), "UniPCMultistepScheduler",
                {"solver_type": "bh1", "solver_order": 3, "lower_order_final": True, "final_sigmas_type": "sigma_min",
                 **_LIN}, kdiffusion=False,
                adjust_steps=True),
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


def build_scheduler(spec: SamplerSpec, base_config: dict[str, Any], seed: int):
    """A fresh diffusers scheduler for one request, from the checkpoint's own scheduler config.

    Args:
        spec: the registry row.
        base_config: the loaded pipeline's ``scheduler.config`` (betas, prediction type).
        seed: first image seed; seeds DPM++ SDE's Brownian noise, which otherwise draws from the global RNG.
    """
    import diffusers

    cls = getattr(diffusers, spec.scheduler)
    overrides = dict(spec.kwargs)
    if spec.scheduler == "DPMSolverSDEScheduler":
        overrides["noise_sampler_seed"] = seed
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    # A config written for one scheduler class may carry another's keys (PNDM's skip_prk_steps...).
    config.update(overrides)
    return cls.from_config(config)
