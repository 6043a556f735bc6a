"""The built-in scripts' arguments: their UI controls as a table (``/script-info``) and ``script_args`` read
against it, positionally as A1111 passes them to ``run`` or (sdapi extension) by ``run``'s parameter names.

A1111 v1.2.1 slices the positional list into the script's ``run(p, *args)`` unchecked: a longer list shifts
nothing but is cut, a shorter one takes the next scripts' defaults, a wrong type fails somewhere inside. Here a
longer list or an unknown name is a 422 naming the script, missing trailing values take the UI default (what the
A1111 UI would send), and each value is converted as pydantic v1 converts a field of that type (``"8"`` → 8,
``"false"`` → False), or refused with a 422 naming the argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdapi.errors import InvalidRequest
from sdapi.protocol.coercion import v1_bool, v1_float, v1_int

# Kinds of control: what a value is converted to.
HTML = "html"            # a gr.HTML text: a placeholder in the list, its value unused
BOOL = "bool"            # gr.Checkbox
INT = "int"              # gr.Slider with an integer step
FLOAT = "float"          # gr.Slider with a fractional step
TEXT = "text"            # gr.Textbox, gr.Radio/gr.Dropdown of strings (the script checks the choice)
INDEX = "index"          # gr.Radio(type="index"): an index, or (leniency) the choice's name
DIRECTIONS = "directions"  # gr.CheckboxGroup: a list of choices (A1111 tests `"left" in value`, so text works too)
UPSCALER = "upscaler"    # SD upscale's radio over the upscalers: an index, or a name as A1111's run accepts


@dataclass(frozen=True)
class ArgSpec:
    """One UI control of a script, in ``ui()`` order.

    Args:
        name: ``run``'s parameter name (the named form's key).
        label: the control's label (``""`` for HTML).
        kind: what a value is read as (see the module's kinds).
        value: the UI default.
        minimum, maximum, step: the slider's range, as ``/script-info`` reports it.
        choices: the radio/dropdown/checkbox group's choices (SD upscale's come from the server's upscalers).
    """

    name: str
    label: str
    kind: str
    value: Any
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: tuple[str, ...] | None = None

    def info(self, upscalers: list[str]) -> dict[str, Any]:
        """The control as later A1111's ``/script-info`` describes it (``None`` fields left out)."""
        choices = list(upscalers) if self.kind == UPSCALER else (list(self.choices) if self.choices else None)
        value = upscalers[0] if self.kind == UPSCALER and upscalers else self.value
        described = {"label": self.label, "value": value, "minimum": self.minimum, "maximum": self.maximum,
                     "step": self.step, "choices": choices}
        return {key: item for key, item in described.items() if item is not None}


def read_args(title: str, specs: tuple[ArgSpec, ...], script_args: Any) -> dict[str, Any]:
    """``script_args`` of the script called ``title`` as ``{name: converted value}``, every name present.

    Raises:
        InvalidRequest: more values than the script takes, an unknown name, a value of the wrong type.
    """
    names = [spec.name for spec in specs]
    if isinstance(script_args, dict):
        unknown = sorted(set(script_args) - set(names))
        if unknown:
            raise InvalidRequest(f"script_args for {title.lower()}: unknown {', '.join(unknown)}; "
                                 f"arguments: {', '.join(names)}")
        given = dict(script_args)
    else:
        values = list(script_args or [])
        if len(values) > len(specs):
            raise InvalidRequest(f"script_args for {title.lower()} hold at most {len(specs)} values "
                                 f"[{', '.join(names)}] (A1111 v1.2.1), got {len(values)}")
        given = dict(zip(names, values))
    # Defaults go through the same reading (a radio's default is its choice's name, run() wants its index).
    values = {spec.name: given.get(spec.name, spec.value) for spec in specs}
    return {spec.name: None if values[spec.name] is None else convert(spec, values[spec.name]) for spec in specs}


def convert(spec: ArgSpec, value: Any) -> Any:
    """One value read as its control's kind.

    Raises:
        InvalidRequest: naming the argument.
    """
    try:
        return _CONVERTERS[spec.kind](spec, value)
    except InvalidRequest:
        raise
    except Exception:  # noqa: BLE001 - pydantic's coercion errors and plain ones alike
        raise InvalidRequest(f"script_args {spec.name}: {value!r} is not valid here") from None


def _index(spec: ArgSpec, value: Any) -> int:
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        lowered = [choice.lower() for choice in spec.choices or ()]
        if value.lower() not in lowered:
            raise InvalidRequest(f"script_args {spec.name}: {value!r} is not one of {', '.join(spec.choices or ())}")
        return lowered.index(value.lower())
    return v1_int(value)


def _upscaler(spec: ArgSpec, value: Any) -> int | str:
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return value
    return v1_int(value)


def _directions(spec: ArgSpec, value: Any) -> list[str] | str:
    if isinstance(value, str):
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest(f"script_args {spec.name} must be a list of {', '.join(spec.choices or ())}, "
                             f"got {value!r}")
    return list(value)


def _text(spec: ArgSpec, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise InvalidRequest(f"script_args {spec.name} must be text, got {value!r}")
    return str(value)


_CONVERTERS = {
    HTML: lambda spec, value: value,
    BOOL: lambda spec, value: v1_bool(value),
    INT: lambda spec, value: v1_int(value),
    FLOAT: lambda spec, value: v1_float(value),
    TEXT: _text,
    INDEX: _index,
    DIRECTIONS: _directions,
    UPSCALER: _upscaler,
}
