"""Pydantic-v1-style lax scalar and container types, as ``Annotated`` aliases.

A1111 v1.2.1 runs on pydantic 1.10, and real clients rely on its coercions
("steps": "20", "steps": 20.7, "cfg_scale": 7, "inpainting_mask_invert": false, ...).
Pydantic v2 is stricter (it rejects 20.7 for an int, 1 for a str, ...), so each alias
re-implements the v1 validator with a ``BeforeValidator`` that hands the core
validator a value of exactly the target type.

Errors are raised as ``PydanticCustomError`` whose *type* is already the v1 error type
("type_error.integer", ...) and whose message is the v1 message; see
``sdapi.protocol.validation`` for the conversion to the v1 error shape.

None handling is left to the field: write ``Optional[LaxInt]`` etc. (A1111 makes every
request field ``Optional``; ``null`` means ``None``).
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from enum import Enum
from types import GeneratorType
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "LaxInt",
    "LaxFloat",
    "LaxBool",
    "LaxStr",
    "LaxList",
    "LaxStrList",
    "LaxDict",
    "v1_int",
    "v1_float",
    "v1_bool",
    "v1_str",
    "v1_list",
    "v1_dict",
]

# pydantic v1 refused to int() strings longer than this (CVE-2020-10735 guard).
_MAX_STR_INT = 4300

# pydantic v1's BOOL_FALSE / BOOL_TRUE sets (membership test; 1.0 == 1 so floats match too).
_BOOL_FALSE = {0, "0", "off", "f", "false", "n", "no"}
_BOOL_TRUE = {1, "1", "on", "t", "true", "y", "yes"}


def _error(v1_type: str, msg: str) -> PydanticCustomError:
    return PydanticCustomError(v1_type, msg)


def _none_not_allowed() -> PydanticCustomError:
    # Only reached where the alias is used without Optional (e.g. list items): v1's message.
    return _error("type_error.none.not_allowed", "none is not an allowed value")


def v1_int(v: Any) -> int:
    """pydantic v1 ``int_validator``: ``int(v)``; bools → 0/1; "20" → 20; 20.7 → 20; "20.0" → error."""
    if v is None:
        raise _none_not_allowed()
    if isinstance(v, int) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (str, bytes, bytearray)) and len(v) > _MAX_STR_INT:
        raise _error("type_error.integer", "value is not a valid integer")
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        raise _error("type_error.integer", "value is not a valid integer") from None


def v1_float(v: Any) -> float:
    """pydantic v1 ``float_validator``: ``float(v)``; 7 → 7.0, "7.5" → 7.5, true → 1.0."""
    if v is None:
        raise _none_not_allowed()
    if isinstance(v, float):
        return v
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        raise _error("type_error.float", "value is not a valid float") from None


def v1_bool(v: Any) -> bool:
    """pydantic v1 ``bool_validator``: true/false, 0/1, and (case-insensitive)
    "0"/"off"/"f"/"false"/"n"/"no", "1"/"on"/"t"/"true"/"y"/"yes"; anything else is an error."""
    if v is None:
        raise _none_not_allowed()
    if v is True or v is False:
        return v
    if isinstance(v, (bytes, bytearray)):
        try:
            v = bytes(v).decode()
        except UnicodeDecodeError:
            raise _error("type_error.bool", "value could not be parsed to a boolean") from None
    if isinstance(v, str):
        v = v.lower()
    try:
        if v in _BOOL_TRUE:
            return True
        if v in _BOOL_FALSE:
            return False
    except TypeError:  # unhashable (list, dict)
        pass
    raise _error("type_error.bool", "value could not be parsed to a boolean")


def v1_str(v: Any) -> str:
    """pydantic v1 ``str_validator``: str as is, numbers (bools included) → ``str(v)``, bytes decoded."""
    if v is None:
        raise _none_not_allowed()
    if isinstance(v, str):
        if isinstance(v, Enum):
            return v.value
        return str(v)
    if isinstance(v, (float, int, Decimal)):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode()
        except UnicodeDecodeError:
            pass
    raise _error("type_error.str", "str type expected")


def v1_list(v: Any) -> list:
    """pydantic v1 ``list_validator``: list as is, other sequences (tuple, set, ...) → list."""
    if v is None:
        raise _none_not_allowed()
    if isinstance(v, list):
        return v
    if isinstance(v, (tuple, set, frozenset, GeneratorType, deque)):
        return list(v)
    raise _error("type_error.list", "value is not a valid list")


def v1_dict(v: Any) -> dict:
    """pydantic v1 ``dict_validator``: dict as is, else ``dict(v)`` (e.g. a list of pairs)."""
    if v is None:
        raise _none_not_allowed()
    if isinstance(v, dict):
        return v
    try:
        return dict(v)
    except (TypeError, ValueError):
        raise _error("type_error.dict", "value is not a valid dict") from None


def _identity(v: Any) -> Any:
    return v


LaxInt = Annotated[int, BeforeValidator(v1_int)]
"""int with pydantic-v1 coercion."""

# The identity serializer keeps an *unvalidated* int default (A1111's ``denoising_strength=0``,
# ``subseed_strength=0``) an int in every dump mode, as v1 echoed it (``0``, not ``0.0``);
# WithJsonSchema keeps the schema "number" in both validation and serialization mode.
LaxFloat = Annotated[
    float,
    BeforeValidator(v1_float),
    PlainSerializer(_identity),
    WithJsonSchema({"type": "number"}),
]
"""float with pydantic-v1 coercion (ints/strings/bools → float)."""

LaxBool = Annotated[bool, BeforeValidator(v1_bool)]
"""bool with pydantic-v1 coercion ("True"/"yes"/"on"/1 → True ...)."""

LaxStr = Annotated[str, BeforeValidator(v1_str)]
"""str with pydantic-v1 coercion (0 → "0", 7.5 → "7.5", true → "True")."""

LaxList = Annotated[list[Any], BeforeValidator(v1_list)]
"""untyped list (A1111 ``list``)."""

LaxStrList = Annotated[list[LaxStr], BeforeValidator(v1_list)]
"""``List[str]`` with v1 coercion of the items."""

LaxDict = Annotated[dict[LaxStr, Any], BeforeValidator(v1_dict)]
"""``Dict[str, Any]`` / ``dict`` with v1 coercion."""
