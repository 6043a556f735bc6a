"""``script_args`` of the X/Y/Z plot → :class:`PlotArgs`, from A1111's 14 positional values or (sdapi extension)
named ones.

A1111 v1.2.1 passes the positional list to its script unchecked: a short list shifts every argument and fails
with an unrelated ``TypeError``. Here a malformed list is refused with 422 naming the argument. Two leniencies
keep real clients working: booleans sent as strings (``"False"``, which A1111 would take as true) are read as
pydantic v1 reads them, and a ``*_values_dropdown`` sent as ``""`` or ``null`` counts as empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sdapi.errors import InvalidRequest
from sdapi.protocol.coercion import v1_bool, v1_int
from sdapi.protocol.scripts import XYZ_POSITIONAL_ARGS, XyzPlotArgs


@dataclass(frozen=True)
class AxisArgs:
    """What the client said about one axis.

    Args:
        type: an index into the mode's axis list, or an axis label.
        values: the values text, or a list of values (named form).
        dropdown: the ``*_values_dropdown`` list (what A1111 reads for axes with choices).
    """

    type: int | str
    values: str | list
    dropdown: list


@dataclass(frozen=True)
class PlotArgs:
    """The X/Y/Z plot's arguments, whichever form they came in."""

    x: AxisArgs
    y: AxisArgs
    z: AxisArgs
    draw_legend: bool = True
    include_lone_images: bool = False
    include_sub_grids: bool = False
    no_fixed_seeds: bool = False
    margin_size: int = 0


def plot_args(script_args: Any) -> PlotArgs:
    """Read ``script_args`` (a 14-value list or a dict of named arguments).

    Raises:
        InvalidRequest: a list of another length, a value of the wrong type, or an unknown name.
    """
    if isinstance(script_args, dict):
        return _named(script_args)
    values = list(script_args or [])
    if len(values) != len(XYZ_POSITIONAL_ARGS):
        raise InvalidRequest(
            f"script_args for x/y/z plot must hold {len(XYZ_POSITIONAL_ARGS)} values "
            f"[{', '.join(XYZ_POSITIONAL_ARGS)}] (A1111 v1.2.1), got {len(values)}; or pass them by name")
    return _positional(dict(zip(XYZ_POSITIONAL_ARGS, values)))


def _positional(named: dict[str, Any]) -> PlotArgs:
    axes = [AxisArgs(_axis_type(named, f"{a}_type"), _text(named, f"{a}_values"), _dropdown(named, a))
            for a in "xyz"]
    flags = {name: _flag(named, name)
             for name in ("draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds")}
    margin = _checked(named, "margin_size", v1_int)
    if margin < 0:
        raise InvalidRequest(f"script_args margin_size must be 0 or more, got {margin}")
    return PlotArgs(*axes, **flags, margin_size=margin)


def _named(named: dict[str, Any]) -> PlotArgs:
    try:
        args = XyzPlotArgs.model_validate(named)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'script_args'}: {err['msg']}"
                             for err in exc.errors())
        raise InvalidRequest(f"script_args: {problems}") from None
    axes = [AxisArgs(getattr(args, f"{a}_type"), getattr(args, f"{a}_values"), []) for a in "xyz"]
    return PlotArgs(*axes, draw_legend=args.draw_legend, include_lone_images=args.include_lone_images,
                    include_sub_grids=args.include_sub_grids, no_fixed_seeds=args.no_fixed_seeds,
                    margin_size=args.margin_size)


def _checked(named: dict[str, Any], name: str, convert):
    try:
        return convert(named[name])
    except Exception:  # noqa: BLE001 - pydantic's coercion errors and plain ones alike
        raise InvalidRequest(f"script_args {name}: {named[name]!r} is not valid here") from None


def _axis_type(named: dict[str, Any], name: str) -> int | str:
    value = named[name]
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return value
    return _checked(named, name, v1_int)


def _text(named: dict[str, Any], name: str) -> str:
    value = named[name]
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise InvalidRequest(f"script_args {name} must be text, got {value!r}")
    return str(value)


def _dropdown(named: dict[str, Any], axis: str) -> list:
    name = f"{axis}_values_dropdown"
    value = named[name]
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"script_args {name} must be a list, got {value!r}")
    return value


def _flag(named: dict[str, Any], name: str) -> bool:
    return _checked(named, name, v1_bool)
