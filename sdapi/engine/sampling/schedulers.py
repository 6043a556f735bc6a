"""Later A1111's schedule types (v1.9+ ``scheduler`` request field, ``GET /sdapi/v1/schedulers``) as a data table.

A1111 v1.2.1 knew two sigma schedules, chosen by the sampler's name: k-diffusion's default and Karras. v1.9
split them off as a separate ``scheduler`` field; this table is v1.10.1's list, in its order, with its names,
labels, aliases, default rho and whether the schedule reads the model's own noise levels. No torch here: the
sigmas themselves are computed by :func:`sdapi.engine.sampling.schedules.scheduled_sigmas`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdapi.engine.sampling.registry import SAMPLERS_BY_NAME, SamplerSpec, find_sampler

AUTOMATIC = "automatic"


@dataclass(frozen=True)
class SchedulerSpec:
    """One schedule type.

    Args:
        name: the key (``karras``), also accepted in requests.
        label: the display name (``Karras``), accepted in requests and written to the infotext.
        aliases: more names A1111 recognises as a suffix of a sampler name (``Euler SGMUniform``).
        default_rho: rho of the schedule's formula (-1: it has none).
        need_inner_model: computed from the model's 1000 noise levels rather than its sigma range only.
    """

    name: str
    label: str
    aliases: tuple[str, ...] = ()
    default_rho: float = -1.0
    need_inner_model: bool = False


SCHEDULERS: tuple[SchedulerSpec, ...] = (
    SchedulerSpec(AUTOMATIC, "Automatic"),
    SchedulerSpec("uniform", "Uniform", need_inner_model=True),
    SchedulerSpec("karras", "Karras", default_rho=7.0),
    SchedulerSpec("exponential", "Exponential"),
    SchedulerSpec("polyexponential", "Polyexponential", default_rho=1.0),
    SchedulerSpec("sgm_uniform", "SGM Uniform", aliases=("SGMUniform",), need_inner_model=True),
    SchedulerSpec("kl_optimal", "KL Optimal"),
    SchedulerSpec("align_your_steps", "Align Your Steps"),
    SchedulerSpec("simple", "Simple", need_inner_model=True),
    SchedulerSpec("normal", "Normal", need_inner_model=True),
    SchedulerSpec("ddim", "DDIM", need_inner_model=True),
    SchedulerSpec("beta", "Beta", need_inner_model=True),
)

# A1111's ``schedulers_map``: names and labels (aliases only count as a sampler-name suffix).
SCHEDULERS_BY_KEY: dict[str, SchedulerSpec] = {**{s.name: s for s in SCHEDULERS}, **{s.label: s for s in SCHEDULERS}}

# "Beta" reads these options in A1111 (v1.10 defaults); sdapi has no such options yet, so they are fixed.
BETA_DIST_ALPHA = 0.6
BETA_DIST_BETA = 0.6


def scheduler_items() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/schedulers`` body (v1.10.1: ``aliases`` is ``null`` when there are none)."""
    return [{"name": s.name, "label": s.label, "aliases": list(s.aliases) or None, "default_rho": s.default_rho,
             "need_inner_model": s.need_inner_model} for s in SCHEDULERS]


def split_scheduler_suffix(sampler_name: str) -> tuple[str, SchedulerSpec | None]:
    """``"Euler Exponential"`` → ``("Euler", exponential)``: A1111 v1.10's reading of a schedule type named at the
    end of a sampler name (label, name or alias); ``(sampler_name, None)`` when it names none."""
    for spec in SCHEDULERS:
        for option in (spec.label, spec.name, *spec.aliases):
            if sampler_name.endswith(" " + option):
                return sampler_name[:-(len(option) + 1)], spec
    return sampler_name, None


@dataclass(frozen=True)
class SamplerChoice:
    """A request's sampler and schedule type, resolved.

    Args:
        sampler: the v1.2.1 sampler row (``DPM++ 2M`` with ``Karras`` becomes the ``DPM++ 2M Karras`` row).
        schedule_type: a schedule type v1.2.1 has no row for (``exponential``, ``karras`` for Euler…);
            ``None``: the sampler's own schedule.
        warning: why a requested schedule type was not applied (unknown, or a sampler without a sigma schedule).
    """

    sampler: SamplerSpec
    schedule_type: str | None = None
    warning: str | None = None


def resolve_sampler(sampler_name: str | None, scheduler: str | None) -> SamplerChoice:
    """A1111 v1.10's ``get_sampler_and_scheduler`` over v1.2.1's sampler table.

    A schedule type at the end of the sampler name wins over the ``scheduler`` field (as in v1.10), so every v1.2.1
    name keeps its meaning. Unlike v1.10, an unknown sampler is still v1.2.1's 404, and an unknown schedule type
    falls back to the sampler's own with a warning instead of silently.

    Raises:
        UnknownSampler: A1111's 404 ``Sampler not found``.
    """
    if sampler_name in SAMPLERS_BY_NAME:
        spec = SAMPLERS_BY_NAME[sampler_name]
        named = SCHEDULERS_BY_KEY["karras"] if spec.karras else None
    else:
        base, named = split_scheduler_suffix(sampler_name or "")
        spec = find_sampler(base if named is not None else sampler_name)
    warning = None
    chosen = named
    if chosen is None and scheduler not in (None, ""):
        chosen = SCHEDULERS_BY_KEY.get(scheduler)
        if chosen is None:
            warning = f"scheduler {scheduler!r} is not a schedule type; {spec.name} used its own schedule"
    if chosen is None or chosen.name in (AUTOMATIC, _own_schedule(spec)):
        return SamplerChoice(spec, None, warning)
    if not spec.kdiffusion or spec.sigma_range:
        return SamplerChoice(spec, None, f"schedule type {chosen.label} does not apply to {spec.name}")
    karras_row = SAMPLERS_BY_NAME.get(f"{spec.name} Karras")
    if chosen.name == "karras" and karras_row is not None:
        return SamplerChoice(karras_row)
    return SamplerChoice(spec, chosen.name)


def _own_schedule(spec: SamplerSpec) -> str:
    return "karras" if spec.karras else "uniform"


def schedule_label(schedule_type: str | None) -> str | None:
    """The infotext's ``Schedule type`` value (later A1111), ``None`` for a sampler's own schedule."""
    return SCHEDULERS_BY_KEY[schedule_type].label if schedule_type is not None else None
