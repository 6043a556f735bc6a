"""The X/Y/Z plot's axis types as A1111 v1.2.1 lists them, as a data table.

A client names an axis by its **index** in the list for its mode (txt2img or img2img; each list leaves out the
other mode's rows), so the order of :data:`AXIS_TYPES` is the contract:

* txt2img: 0 Nothing, 1 Seed, 2 Var. seed, 3 Var. strength, 4 Steps, 5 Hires steps, 6 CFG Scale, 7 Prompt S/R,
  8 Prompt order, 9 Sampler, 10 Checkpoint name, 11 Negative Guidance minimum sigma, 12 Sigma Churn, 13 Sigma min,
  14 Sigma max, 15 Sigma noise, 16 Eta, 17 Clip skip, 18 Denoising, 19 Hires upscaler, 20 VAE, 21 Styles,
  22 UniPC Order, 23 Face restore;
* img2img: the same with 5 CFG Scale, 6 Image CFG Scale and 19 Cond. Image Mask Weight.

Rows whose setting sdapi does not apply carry ``unsupported``: plotting them would draw a grid of identical cells,
so they are refused (422) with the reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from sdapi.checkpoints import CheckpointCatalog, CheckpointInfo
from sdapi.engine.sampling.registry import SAMPLERS
from sdapi.scripts.xyz.cell_draft import CellDraft
from sdapi.scripts.xyz.values import ValueKind

TXT2IMG, IMG2IMG, BOTH = "txt2img", "img2img", "both"


class LabelStyle(Enum):
    """How a value is written on the grid (A1111's ``format_value*`` functions)."""

    NAMED = "named"  # "Steps: 20"
    BARE = "bare"  # "cat"
    JOINED = "joined"  # "a, b, c" (Prompt order)
    NONE = "none"  # "" (Nothing)


# A1111's ``samplers_map``: display names and aliases, lower case, to display names.
SAMPLER_NAMES: dict[str, str] = {
    key.lower(): spec.name for spec in SAMPLERS for key in (spec.name, *spec.aliases)
}


def closest_checkpoint(catalog: CheckpointCatalog, name: str) -> CheckpointInfo | None:
    """A1111's ``get_closet_checkpoint_match``: an exact alias, else the shortest title containing ``name``."""
    exact = catalog.find(name)
    if exact is not None:
        return exact
    found = sorted((info for info in catalog.items() if name in info.title), key=lambda info: len(info.title))
    return found[0] if found else None


# -- what a value does to a cell ---------------------------------------------------------------------------

Apply = Callable[[CellDraft, Any, list, CheckpointCatalog], None]


def set_field(name: str) -> Apply:
    """An axis that sets one request field to the value."""
    def apply(cell: CellDraft, value: Any, values: list, catalog: CheckpointCatalog) -> None:
        cell.fields[name] = value
    return apply


def set_option(name: str) -> Apply:
    """An axis that overrides one option for the cell (restored afterwards)."""
    def apply(cell: CellDraft, value: Any, values: list, catalog: CheckpointCatalog) -> None:
        cell.overrides[name] = value
    return apply


def replace_in_prompts(cell: CellDraft, value: str, values: list, catalog: CheckpointCatalog) -> None:
    """Prompt S/R: the first value is searched for in both prompts and replaced by this one.

    Raises:
        RuntimeError: A1111's message (a 500, as A1111) when neither prompt contains the search string.
    """
    search = values[0]
    prompt, negative = cell.fields["prompt"], cell.fields["negative_prompt"]
    if search not in prompt and search not in negative:
        raise RuntimeError(f"Prompt S/R did not find {search} in prompt or negative prompt.")
    cell.fields["prompt"] = prompt.replace(search, value)
    cell.fields["negative_prompt"] = negative.replace(search, value)


def reorder_prompt(cell: CellDraft, value: tuple[str, ...], values: list, catalog: CheckpointCatalog) -> None:
    """Prompt order: the listed tokens' places in the prompt, in prompt order, get the tokens in this order.

    Mirrors A1111's cut-and-rebuild, including what it does with a token missing from the prompt.
    """
    rest = cell.fields["prompt"]
    tokens_by_place = sorted(((rest.find(token), token) for token in value), key=lambda pair: pair[0])
    pieces = []
    for _, token in tokens_by_place:
        at = rest.find(token)
        pieces.append(rest[0:at])
        rest = rest[at + len(token):]
    cell.fields["prompt"] = "".join(piece + value[i] for i, piece in enumerate(pieces)) + rest


def set_sampler(cell: CellDraft, value: str, values: list, catalog: CheckpointCatalog) -> None:
    """Sampler: a display name or alias, any case (unlike the API's ``sampler_name``)."""
    cell.fields["sampler_name"] = SAMPLER_NAMES[value.lower()]


def set_checkpoint(cell: CellDraft, value: str, values: list, catalog: CheckpointCatalog) -> None:
    """Checkpoint name: the closest match, as an ``sd_model_checkpoint`` override for the cell."""
    cell.overrides["sd_model_checkpoint"] = closest_checkpoint(catalog, value).name


def add_styles(cell: CellDraft, value: str, values: list, catalog: CheckpointCatalog) -> None:
    """Styles: the comma-separated names are added to the request's (not stripped, as A1111)."""
    cell.fields["styles"] = cell.fields["styles"] + value.split(",")


def nothing(cell: CellDraft, value: Any, values: list, catalog: CheckpointCatalog) -> None:
    """The Nothing axis: one cell, no change."""


# -- checks before anything runs ---------------------------------------------------------------------------

Confirm = Callable[[list, CheckpointCatalog], None]


def confirm_samplers(values: list, catalog: CheckpointCatalog) -> None:
    """Raises: RuntimeError: A1111's ``Unknown sampler: <value>`` (a 500, as A1111)."""
    for value in values:
        if value.lower() not in SAMPLER_NAMES:
            raise RuntimeError(f"Unknown sampler: {value}")


def confirm_checkpoints(values: list, catalog: CheckpointCatalog) -> None:
    """Raises: RuntimeError: A1111's ``Unknown checkpoint: <value>`` (a 500, as A1111)."""
    for value in values:
        if closest_checkpoint(catalog, value) is None:
            raise RuntimeError(f"Unknown checkpoint: {value}")


# -- the table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisType:
    """One row of A1111's ``axis_options``.

    Args:
        label: the name shown in the UI, infotexts (``X Type``) and legends.
        kind: how its values are read.
        apply: what a value changes in a cell.
        label_style: how a value is written on the grid.
        mode: ``both``, or the one mode whose list has it.
        has_choices: A1111 reads its values from the ``*_values_dropdown`` list.
        confirm: checks all values before any cell runs.
        cost: A1111's switching cost; the costliest axis is iterated outermost.
        needs_hires: in txt2img, it only acts on the hires fix second pass.
        needs_inpainting: it only acts on inpainting checkpoints.
        unsupported: why sdapi cannot plot it (refused with 422), or ``None``.
    """

    label: str
    kind: ValueKind
    apply: Apply
    label_style: LabelStyle = LabelStyle.NAMED
    mode: str = BOTH
    has_choices: bool = False
    confirm: Confirm | None = None
    cost: float = 0.0
    needs_hires: bool = False
    needs_inpainting: bool = False
    unsupported: str | None = None


_SAMPLER_ARGS = dict(kind=ValueKind.TEXT, apply=set_sampler, label_style=LabelStyle.BARE, has_choices=True,
                     confirm=confirm_samplers)
_NOT_APPLIED = "sdapi accepts {} but does not apply it yet, so every cell would be the same"

AXIS_TYPES: tuple[AxisType, ...] = (
    AxisType("Nothing", ValueKind.TEXT, nothing, LabelStyle.NONE),
    AxisType("Seed", ValueKind.INT, set_field("seed")),
    AxisType("Var. seed", ValueKind.INT, set_field("subseed")),
    AxisType("Var. strength", ValueKind.FLOAT, set_field("subseed_strength")),
    AxisType("Steps", ValueKind.INT, set_field("steps")),
    AxisType("Hires steps", ValueKind.INT, set_field("hr_second_pass_steps"), mode=TXT2IMG, needs_hires=True),
    AxisType("CFG Scale", ValueKind.FLOAT, set_field("cfg_scale")),
    AxisType("Image CFG Scale", ValueKind.FLOAT, set_field("image_cfg_scale"), mode=IMG2IMG,
             unsupported="instruct-pix2pix models (image_cfg_scale) are not supported by sdapi"),
    AxisType("Prompt S/R", ValueKind.TEXT, replace_in_prompts, LabelStyle.BARE),
    AxisType("Prompt order", ValueKind.PERMUTATIONS, reorder_prompt, LabelStyle.JOINED),
    AxisType("Sampler", mode=TXT2IMG, **_SAMPLER_ARGS),
    AxisType("Sampler", mode=IMG2IMG, **_SAMPLER_ARGS),
    AxisType("Checkpoint name", ValueKind.TEXT, set_checkpoint, LabelStyle.BARE, has_choices=True,
             confirm=confirm_checkpoints, cost=1.0),
    AxisType("Negative Guidance minimum sigma", ValueKind.FLOAT, set_field("s_min_uncond"),
             unsupported=_NOT_APPLIED.format("s_min_uncond")),
    AxisType("Sigma Churn", ValueKind.FLOAT, set_field("s_churn"), unsupported=_NOT_APPLIED.format("s_churn")),
    AxisType("Sigma min", ValueKind.FLOAT, set_field("s_tmin"), unsupported=_NOT_APPLIED.format("s_tmin")),
    AxisType("Sigma max", ValueKind.FLOAT, set_field("s_tmax"), unsupported=_NOT_APPLIED.format("s_tmax")),
    AxisType("Sigma noise", ValueKind.FLOAT, set_field("s_noise"), unsupported=_NOT_APPLIED.format("s_noise")),
    AxisType("Eta", ValueKind.FLOAT, set_field("eta"), unsupported=_NOT_APPLIED.format("eta")),
    AxisType("Clip skip", ValueKind.INT, set_option("CLIP_stop_at_last_layers")),
    AxisType("Denoising", ValueKind.FLOAT, set_field("denoising_strength"), needs_hires=True),
    AxisType("Hires upscaler", ValueKind.TEXT, set_field("hr_upscaler"), mode=TXT2IMG, has_choices=True,
             needs_hires=True),
    AxisType("Cond. Image Mask Weight", ValueKind.FLOAT, set_option("inpainting_mask_weight"), mode=IMG2IMG,
             needs_inpainting=True),
    AxisType("VAE", ValueKind.TEXT, nothing, has_choices=True, cost=0.7,
             unsupported="the VAE axis is not mapped yet; override_settings.sd_vae selects a VAE per request"),
    AxisType("Styles", ValueKind.TEXT, add_styles, has_choices=True),
    AxisType("UniPC Order", ValueKind.INT, nothing, cost=0.5,
             unsupported=_NOT_APPLIED.format("the uni_pc_order option (UniPC always runs order 3)")),
    AxisType("Face restore", ValueKind.TEXT, nothing, LabelStyle.BARE,
             unsupported="face restoration is not available in sdapi"),
)


def axis_types(mode: str) -> list[AxisType]:
    """The axis list a client's indexes point into, for ``txt2img`` or ``img2img``."""
    return [axis for axis in AXIS_TYPES if axis.mode in (BOTH, mode)]


def axis_labels(mode: str) -> list[str]:
    """The labels of :func:`axis_types`, in index order (``/script-info`` choices)."""
    return [axis.label for axis in axis_types(mode)]


def format_label(axis: AxisType, value: Any) -> str:
    """The legend text of one value, as A1111 writes it (floats rounded to 8 places)."""
    if axis.label_style is LabelStyle.NONE:
        return ""
    if axis.label_style is LabelStyle.JOINED:
        return ", ".join(value)
    if isinstance(value, float):
        value = round(value, 8)
    return f"{axis.label}: {value}" if axis.label_style is LabelStyle.NAMED else str(value)
