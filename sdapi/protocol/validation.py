"""Render request validation errors the way A1111 v1.2.1 (FastAPI 0.94 + pydantic 1.10) did.

A1111 keeps FastAPI's default ``RequestValidationError`` handler, so its 422 body is
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` with pydantic-v1 messages and
types (``"value is not a valid integer"`` / ``"type_error.integer"``), plus ``ctx`` where v1 had
one. Modern FastAPI produces pydantic-v2 error dicts (``{"type": "int_parsing", "msg": "Input
should be ...", "input": ...}``); :func:`v1_validation_errors` converts them.

Wire it into the app with::

    @app.exception_handler(RequestValidationError)
    async def validation_exception_handler(request, exc):
        return JSONResponse(status_code=422, content={"detail": v1_validation_errors(exc)})
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

__all__ = ["v1_validation_errors", "v1_error"]

# v2 type -> (v1 type, v1 msg); msg may use {placeholders} from the v1 ctx built below.
_SIMPLE: dict[str, tuple[str, str]] = {
    "missing": ("value_error.missing", "field required"),
    "int_parsing": ("type_error.integer", "value is not a valid integer"),
    "int_type": ("type_error.integer", "value is not a valid integer"),
    "int_from_float": ("type_error.integer", "value is not a valid integer"),
    "int_parsing_size": ("type_error.integer", "value is not a valid integer"),
    "float_parsing": ("type_error.float", "value is not a valid float"),
    "float_type": ("type_error.float", "value is not a valid float"),
    "bool_parsing": ("type_error.bool", "value could not be parsed to a boolean"),
    "bool_type": ("type_error.bool", "value could not be parsed to a boolean"),
    "string_type": ("type_error.str", "str type expected"),
    "string_sub_type": ("type_error.str", "str type expected"),
    "string_unicode": ("type_error.str", "str type expected"),
    "bytes_type": ("type_error.bytes", "byte type expected"),
    "dict_type": ("type_error.dict", "value is not a valid dict"),
    "mapping_type": ("type_error.dict", "value is not a valid dict"),
    "model_type": ("type_error.dict", "value is not a valid dict"),
    "model_attributes_type": ("type_error.dict", "value is not a valid dict"),
    "dataclass_type": ("type_error.dict", "value is not a valid dict"),
    "list_type": ("type_error.list", "value is not a valid list"),
    "iterable_type": ("type_error.list", "value is not a valid list"),
    "tuple_type": ("type_error.tuple", "value is not a valid tuple"),
    "set_type": ("type_error.set", "value is not a valid set"),
    "frozen_set_type": ("type_error.frozenset", "value is not a valid frozenset"),
    "none_required": ("type_error.none.allowed", "value is not None"),
    "extra_forbidden": ("value_error.extra", "extra fields not permitted"),
    "finite_number": ("value_error.number.not_finite_number", "ensure this value is a finite number"),
    "decimal_parsing": ("type_error.decimal", "value is not a valid decimal"),
    "decimal_type": ("type_error.decimal", "value is not a valid decimal"),
    "uuid_parsing": ("type_error.uuid", "value is not a valid uuid"),
    "uuid_type": ("type_error.uuid", "value is not a valid uuid"),
    "date_parsing": ("value_error.date", "invalid date format"),
    "date_from_datetime_parsing": ("value_error.date", "invalid date format"),
    "date_type": ("value_error.date", "invalid date format"),
    "datetime_parsing": ("value_error.datetime", "invalid datetime format"),
    "datetime_from_date_parsing": ("value_error.datetime", "invalid datetime format"),
    "datetime_type": ("value_error.datetime", "invalid datetime format"),
    "time_parsing": ("value_error.time", "invalid time format"),
    "time_type": ("value_error.time", "invalid time format"),
    "time_delta_parsing": ("value_error.duration", "invalid duration format"),
    "time_delta_type": ("value_error.duration", "invalid duration format"),
    "json_type": ("type_error.json", "JSON object must be str, bytes or bytearray"),
    "callable_type": ("type_error.callable", "value is not callable"),
}

# v2 type -> (v1 type, v1 msg template, v2 ctx key holding v1's ``limit_value``)
_LIMITS: dict[str, tuple[str, str, str]] = {
    "greater_than": ("value_error.number.not_gt", "ensure this value is greater than {limit_value}", "gt"),
    "greater_than_equal": (
        "value_error.number.not_ge",
        "ensure this value is greater than or equal to {limit_value}",
        "ge",
    ),
    "less_than": ("value_error.number.not_lt", "ensure this value is less than {limit_value}", "lt"),
    "less_than_equal": (
        "value_error.number.not_le",
        "ensure this value is less than or equal to {limit_value}",
        "le",
    ),
    "string_too_short": (
        "value_error.any_str.min_length",
        "ensure this value has at least {limit_value} characters",
        "min_length",
    ),
    "string_too_long": (
        "value_error.any_str.max_length",
        "ensure this value has at most {limit_value} characters",
        "max_length",
    ),
    "too_short": ("value_error.list.min_items", "ensure this value has at least {limit_value} items", "min_length"),
    "too_long": ("value_error.list.max_items", "ensure this value has at most {limit_value} items", "max_length"),
}


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def _loc(loc: Iterable[Any]) -> list[Union[str, int]]:
    out: list[Union[str, int]] = []
    for part in loc:
        if part == "[key]":  # v2 marks dict-key errors so; v1 used "__key__"
            part = "__key__"
        out.append(part if isinstance(part, (str, int)) else str(part))
    return out


def _decode_doc(body: Union[bytes, bytearray, str]) -> str:
    if isinstance(body, str):
        return body
    raw = bytes(body)
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def _jsondecode_error(err: Mapping[str, Any], doc: Any, raw_body: Any) -> dict[str, Any]:
    """v1/FastAPI-0.94 rendering of a ``json.JSONDecodeError`` (``ErrorWrapper(e, ("body", e.pos))``)."""
    loc = list(err.get("loc") or ("body",))
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
    msg = (err.get("ctx") or {}).get("error")
    exc: Optional[json.JSONDecodeError] = None
    if isinstance(doc, (bytes, bytearray)):
        doc = _decode_doc(doc)
    if not isinstance(doc, str) and isinstance(raw_body, (bytes, bytearray, str)):
        try:
            json.loads(raw_body)
        except json.JSONDecodeError as e:
            exc = e
        except ValueError:
            pass
        if exc is None:
            try:
                doc = _decode_doc(raw_body)
            except (UnicodeDecodeError, LookupError):
                doc = None
    if exc is None:
        if not isinstance(doc, str):
            doc = ""
        exc = json.JSONDecodeError(str(msg) if msg is not None else "Expecting value", doc, pos)
    return {
        "loc": ["body", exc.pos],
        "msg": str(exc),
        "type": "value_error.jsondecode",
        "ctx": {"msg": exc.msg, "doc": exc.doc, "pos": exc.pos, "lineno": exc.lineno, "colno": exc.colno},
    }


def v1_error(err: Mapping[str, Any], *, doc: Any = None, raw_body: Any = None) -> dict[str, Any]:
    """Convert one pydantic-v2 / FastAPI error dict into the pydantic-v1 shape."""
    v2_type = str(err.get("type", ""))
    loc = _loc(err.get("loc") or ())
    ctx = err.get("ctx") or {}

    if v2_type == "json_invalid":
        return _jsondecode_error(err, doc, raw_body)

    # Errors raised by sdapi.protocol.coercion (and anyone else) already carry v1 type + msg.
    if v2_type.startswith(("type_error", "value_error")):
        out: dict[str, Any] = {"loc": loc, "msg": str(err.get("msg", "")), "type": v2_type}
        if ctx:
            out["ctx"] = _jsonable(dict(ctx))
        return out

    if v2_type in _SIMPLE:
        t, m = _SIMPLE[v2_type]
        return {"loc": loc, "msg": m, "type": t}

    if v2_type in _LIMITS:
        t, m, key = _LIMITS[v2_type]
        limit = _jsonable(ctx.get(key))
        return {"loc": loc, "msg": m.format(limit_value=limit), "type": t, "ctx": {"limit_value": limit}}

    if v2_type == "multiple_of":
        mult = _jsonable(ctx.get("multiple_of"))
        return {
            "loc": loc,
            "msg": f"ensure this value is a multiple of {mult}",
            "type": "value_error.number.not_multiple",
            "ctx": {"multiple_of": mult},
        }

    if v2_type == "string_pattern_mismatch":
        pattern = _jsonable(ctx.get("pattern"))
        return {
            "loc": loc,
            "msg": f'string does not match regex "{pattern}"',
            "type": "value_error.str.regex",
            "ctx": {"pattern": pattern},
        }

    if v2_type == "literal_error":
        expected = str(ctx.get("expected", ""))
        permitted = re.sub(r" or (?=[^,]*$)", ", ", expected)
        return {
            "loc": loc,
            "msg": f"unexpected value; permitted: {permitted}",
            "type": "value_error.const",
            "ctx": {"given": _jsonable(err.get("input")), "permitted": permitted.split(", ") if permitted else []},
        }

    if v2_type == "enum":
        expected = re.sub(r" or (?=[^,]*$)", ", ", str(ctx.get("expected", "")))
        return {
            "loc": loc,
            "msg": f"value is not a valid enumeration member; permitted: {expected}",
            "type": "type_error.enum",
        }

    if v2_type in ("value_error", "assertion_error"):
        error = ctx.get("error")
        msg = str(error) if error is not None else str(err.get("msg", ""))
        if error is None:
            msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
        t = "value_error" if v2_type == "value_error" else "value_error.assertion"
        return {"loc": loc, "msg": msg, "type": t}

    if v2_type.startswith("url_"):
        return {"loc": loc, "msg": "invalid or missing URL scheme", "type": "value_error.url.scheme"}

    if v2_type == "is_instance_of":
        return {
            "loc": loc,
            "msg": f"instance of {ctx.get('class', '')} expected",
            "type": "type_error.arbitrary_type",
        }

    # Anything else: keep the v2 message, give it a v1-looking type.
    msg = str(err.get("msg", ""))
    return {"loc": loc, "msg": msg[:1].lower() + msg[1:], "type": f"value_error.{v2_type or 'unknown'}"}


def v1_validation_errors(exc: Any, body: Union[bytes, bytearray, str, None] = None) -> list[dict[str, Any]]:
    """Convert a FastAPI ``RequestValidationError`` (or a pydantic ``ValidationError``, or a plain
    list of v2 error dicts) into the list FastAPI 0.94 + pydantic 1.10 put under ``"detail"``.

    ``body`` is the raw request body; it is only needed for an invalid-JSON error when
    ``exc.body`` does not hold the decoded document (FastAPI >= 0.100 puts ``JSONDecodeError.doc``
    there, so normally it is not needed).

    The result is JSON-serialisable (``input`` and ``url`` are dropped, as v1 had neither).
    """
    errors = exc.errors() if hasattr(exc, "errors") and callable(exc.errors) else exc
    doc = getattr(exc, "body", None)
    return [v1_error(e, doc=doc, raw_body=body) for e in errors]
