"""The sampler registry: A1111 v1.2.1's 20 samplers as a data table (no torch here).

Each row names the sampling function that runs it (:data:`sdapi.engine.sampling.core.SAMPLING_FUNCTIONS`) and
the options A1111 gives it. Seventeen rows are k-diffusion samplers: A1111 wraps the model in k-diffusion's
``CompVisDenoiser`` and runs ``k_diffusion.sampling.sample_*`` on its sigma schedule (Karras and
penultimate-discard as the row's options say). DDIM, PLMS and UniPC are CompVis samplers: they walk the model's
discrete timesteps (UniPC its continuous time) and guide the noise prediction, not the denoised image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdapi.engine.errors import UnknownSampler


@dataclass(frozen=True)
class SamplerSpec:
    """One A1111 sampler.

    Args:
        name: A1111's display name, matched exactly and case-sensitively.
        aliases: A1111's k-diffusion aliases (listed by ``/samplers``, not accepted as names, as in v1.2.1).
        function: the sampling function's key (k-diffusion's ``sample_*`` name without the prefix, or
            ``ddim``/``plms``/``unipc``).
        options: ``/samplers`` options, values rendered as strings like A1111's pydantic model did.
        ancestral: takes ``eta`` and draws fresh noise every step.
        second_order: calls the model twice per step (A1111 doubles some of their prompt schedules).
        churn: takes k-diffusion's ``s_churn``/``s_tmin``/``s_tmax``/``s_noise`` (A1111's ``sampler_extra_params``).
        sigma_range: called with a sigma range (and a call budget for ``dpm_fast``) instead of a schedule.
    """

    name: str
    aliases: tuple[str, ...]
    function: str
    options: dict[str, str] = field(default_factory=dict)
    ancestral: bool = False
    second_order: bool = False
    churn: bool = False
    sigma_range: bool = False

    @property
    def kdiffusion(self) -> bool:
        """A k-diffusion sampler (A1111's k-diffusion samplers are exactly the aliased ones)."""
        return bool(self.aliases)

    @property
    def adjust_steps(self) -> bool:
        """A1111's DDIM/PLMS/UniPC step fix-up applies (:func:`effective_steps`)."""
        return not self.kdiffusion

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

_KARRAS = {"scheduler": "karras"}
_DISCARD = {"discard_next_to_last_sigma": "True"}

SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("Euler a", ("k_euler_a", "k_euler_ancestral"), "euler_ancestral", ancestral=True),
    SamplerSpec("Euler", ("k_euler",), "euler", churn=True),
    SamplerSpec("LMS", ("k_lms",), "lms"),
    SamplerSpec("Heun", ("k_heun",), "heun", second_order=True, churn=True),
    SamplerSpec("DPM2", ("k_dpm_2",), "dpm_2", _DISCARD, second_order=True, churn=True),
    SamplerSpec("DPM2 a", ("k_dpm_2_a",), "dpm_2_ancestral", _DISCARD, ancestral=True, second_order=True),
    SamplerSpec("DPM++ 2S a", ("k_dpmpp_2s_a",), "dpmpp_2s_ancestral", ancestral=True, second_order=True),
    SamplerSpec("DPM++ 2M", ("k_dpmpp_2m",), "dpmpp_2m"),
    SamplerSpec("DPM++ SDE", ("k_dpmpp_sde",), "dpmpp_sde", ancestral=True, second_order=True),
    SamplerSpec("DPM fast", ("k_dpm_fast",), "dpm_fast", ancestral=True, sigma_range=True),
    SamplerSpec("DPM adaptive", ("k_dpm_ad",), "dpm_adaptive", ancestral=True, sigma_range=True),
    SamplerSpec("LMS Karras", ("k_lms_ka",), "lms", _KARRAS),
    SamplerSpec("DPM2 Karras", ("k_dpm_2_ka",), "dpm_2", {**_KARRAS, **_DISCARD}, second_order=True, churn=True),
    SamplerSpec("DPM2 a Karras", ("k_dpm_2_a_ka",), "dpm_2_ancestral", {**_KARRAS, **_DISCARD}, ancestral=True,
                second_order=True),
    SamplerSpec("DPM++ 2S a Karras", ("k_dpmpp_2s_a_ka",), "dpmpp_2s_ancestral", _KARRAS, ancestral=True,
                second_order=True),
    SamplerSpec("DPM++ 2M Karras", ("k_dpmpp_2m_ka",), "dpmpp_2m", _KARRAS),
    SamplerSpec("DPM++ SDE Karras", ("k_dpmpp_sde_ka",), "dpmpp_sde", _KARRAS, ancestral=True, second_order=True),
    SamplerSpec("DDIM", (), "ddim"),
    SamplerSpec("PLMS", (), "plms"),
    SamplerSpec("UniPC", (), "unipc"),
)

SAMPLERS_BY_NAME: dict[str, SamplerSpec] = {s.name: s for s in SAMPLERS}

# A1111's UniPC options at their defaults (``uni_pc_order`` etc.); its step fix-up never goes below the order.
UNIPC_ORDER = 3


def find_sampler(name: str | None) -> SamplerSpec:
    """Resolve a sampler exactly as A1111 v1.2.1's ``validate_sampler_name`` does (display names only).

    Raises:
        UnknownSampler: A1111's 404 ``Sampler not found``.
    """
    spec = SAMPLERS_BY_NAME.get(name) if name is not None else None
    if spec is None:
        raise UnknownSampler("Sampler not found")
    return spec


def sampler_items() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/samplers`` body."""
    return [{"name": s.name, "aliases": list(s.aliases), "options": dict(s.options)} for s in SAMPLERS]


def effective_steps(spec: SamplerSpec, steps: int) -> int:
    """A1111's ``adjust_steps_if_invalid`` for DDIM/PLMS/UniPC: 999/(1000//n) whole → that + 1 steps.

    UniPC first raises the count to its order.
    """
    if not spec.adjust_steps or steps <= 0:
        return steps
    if spec.function == "unipc":
        steps = max(steps, UNIPC_ORDER)
    valid = 999 / (1000 // steps)
    return int(valid) + 1 if valid == int(valid) else steps
