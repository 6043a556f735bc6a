"""Wire models of selectable scripts: ``script_args`` (positional as A1111, or named as an sdapi extension), the
X/Y/Z plot's named arguments, and later A1111's ``/sdapi/v1/script-info`` items."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from .coercion import LaxBool, LaxInt, LaxStr, v1_list

__all__ = ["ScriptArgs", "XyzPlotArgs", "ScriptArg", "ScriptInfo", "XYZ_POSITIONAL_ARGS", "BUILTIN_ARG_NAMES"]

XYZ_POSITIONAL_ARGS = ("x_type", "x_values", "x_values_dropdown", "y_type", "y_values", "y_values_dropdown",
                       "z_type", "z_values", "z_values_dropdown", "draw_legend", "include_lone_images",
                       "include_sub_grids", "no_fixed_seeds", "margin_size")
"""The 14 positions of A1111 v1.2.1's X/Y/Z plot ``script_args``."""

BUILTIN_ARG_NAMES = (
    ("sd upscale", ("info", "overlap", "upscaler_index", "scale_factor")),
    ("prompt matrix", ("put_at_start", "different_seeds", "prompt_type", "variations_delimiter", "margin_size")),
    ("prompts from file or textbox", ("checkbox_iterate", "checkbox_iterate_batch", "prompt_txt")),
    ("loopback", ("loops", "final_denoising_strength", "denoising_curve", "append_interrogation")),
    ("poor man's outpainting", ("pixels", "mask_blur", "inpainting_fill", "direction")),
    ("outpainting mk2", ("info", "pixels", "mask_blur", "direction", "noise_q", "color_variation")),
)
"""A1111 v1.2.1's other built-in scripts: their ``run`` parameters after ``p``, in ``script_args`` order (the
scripts' own tables, :mod:`sdapi.scripts`, are checked against this in the tests)."""

AxisTypeName = Union[LaxInt, str]
AxisValues = Union[str, list[Union[str, float, int]]]


class XyzPlotArgs(BaseModel):
    """The X/Y/Z plot's ``script_args`` by name (sdapi extension; A1111 takes only the positional list).

    Unknown names are refused (422) rather than ignored, so a typo cannot silently drop an axis.
    """

    model_config = ConfigDict(title="XyzPlotArgs", extra="forbid")

    x_type: AxisTypeName = Field(default="Nothing", description=(
        "Axis label (case-insensitive, e.g. `Prompt S/R`, `Steps`, `Checkpoint name`) or its A1111 v1.2.1 index."))
    x_values: AxisValues = Field(default="", description=(
        "Values text as typed in A1111 (`1-5`, `1-10 (+2)`, `1-10 [4]`, CSV with quotes), or a list of values. "
        "For axes with choices (Sampler, Checkpoint name, Hires upscaler, Styles) the list or the text names them."))
    y_type: AxisTypeName = Field(default="Nothing", description="As `x_type`.")
    y_values: AxisValues = Field(default="", description="As `x_values`.")
    z_type: AxisTypeName = Field(default="Nothing", description="As `x_type`; one sub-grid per value.")
    z_values: AxisValues = Field(default="", description="As `x_values`.")
    draw_legend: LaxBool = Field(default=True, description="Write axis labels around the grid.")
    include_lone_images: LaxBool = Field(default=False, description="Return every cell image after the grid(s).")
    include_sub_grids: LaxBool = Field(default=False, description="Return each Z value's sub-grid after the grid.")
    no_fixed_seeds: LaxBool = Field(default=False, description=(
        "A1111's 'Keep -1 for seeds': seed -1 draws a new random seed per cell instead of one for the whole plot."))
    margin_size: LaxInt = Field(default=0, ge=0, description="Pixels between cells.")


def _named_args_list() -> str:
    """The named X/Y/Z plot arguments as a Markdown list, for ``/docs``."""
    return "\n".join(f"- `{name}` (default `{json.dumps(field.default)}`): {field.description}"
                     for name, field in XyzPlotArgs.model_fields.items())


SCRIPT_ARGS_DESCRIPTION = (
    "Arguments of the script named by `script_name`. As A1111: a list with the script's UI values in order; for "
    "`x/y/z plot` the 14 values `[" + ", ".join(XYZ_POSITIONAL_ARGS) + "]`, axis types as indexes into A1111 "
    "v1.2.1's list for the mode (`GET /sdapi/v1/script-info` lists them).\n\n"
    "sdapi extension: an object with the same names instead, where an axis type may be its label and values a "
    'list, e.g. `{"x_type": "Prompt S/R", "x_values": "cat, dog", "y_type": "Steps", "y_values": "10-30 (+10)"}`. '
    "Names for `x/y/z plot` (unknown names answer 422):\n\n" + _named_args_list() + "\n\n"
    "A1111's other built-in scripts take their UI values in order (a shorter list takes the UI defaults), or an "
    "object with these names: " + "; ".join(f"`{name}`: `{', '.join(args)}`" for name, args in BUILTIN_ARG_NAMES)
    + ". `upscaler_index` is an index into `/sdapi/v1/upscalers` or a name; `inpainting_fill` an index or "
    "`fill`/`original`/`latent noise`/`latent nothing`; `direction` a list of `left`/`right`/`up`/`down`."
)


def v1_script_args(value: Any) -> Any:
    """A list as pydantic v1 reads one, or (sdapi extension) an object of named arguments."""
    if isinstance(value, dict):
        return value
    return v1_list(value)


ScriptArgs = Annotated[
    Union[list[Any], dict[str, Any]],
    BeforeValidator(v1_script_args),
    # A1111 clients and the OpenAPI parity test see A1111's "array"; the object form is documented alongside.
    WithJsonSchema({"type": "array", "items": {}, "description": SCRIPT_ARGS_DESCRIPTION}),
]
"""``script_args``: positional list, or named arguments (sdapi extension)."""


class ScriptArg(BaseModel):
    """One argument of a script, as later A1111's ``/script-info`` describes it (its UI control)."""

    model_config = ConfigDict(title="ScriptArg")

    label: Optional[LaxStr] = Field(default=None, title="Label", description="The argument's name in the UI")
    value: Optional[Any] = Field(default=None, title="Value", description="Its default")
    minimum: Optional[Any] = Field(default=None, title="Minimum", description="Smallest value the UI allows")
    maximum: Optional[Any] = Field(default=None, title="Maximum", description="Largest value the UI allows")
    step: Optional[Any] = Field(default=None, title="Step", description="UI step between values")
    choices: Optional[list[str]] = Field(default=None, title="Choices", description="The values the UI offers")


class ScriptInfo(BaseModel):
    """A script and its arguments (``GET /sdapi/v1/script-info``, A1111 v1.4+)."""

    model_config = ConfigDict(title="ScriptInfo")

    name: Optional[str] = Field(default=None, title="Name", description="Title in lower case (`script_name`)")
    is_alwayson: Optional[bool] = Field(default=None, title="IsAlwayson", description="Runs on every request")
    is_img2img: Optional[bool] = Field(default=None, title="IsImg2img", description="The img2img instance")
    args: list[ScriptArg] = Field(title="Arguments", description="`script_args`, in order")
