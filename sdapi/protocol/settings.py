"""``Options`` (``/sdapi/v1/options``) and ``Flags`` (``/sdapi/v1/cmd-flags``), A1111 v1.2.1.

A1111 generates both models from its option table and its argparse parser at start-up; we generate them from the
same fields as frozen in v1.2.1's OpenAPI document (``sdapi/data/settings_schemas_v1.2.1.json``), plus the later
A1111 options sdapi honours (``sdapi/data/options_later.json``: SDXL's crop conditioning and CLIP-L skip, and the
``TI hashes``/``VAE hash``/``VAE`` infotext switches, as v1.10.1 names them; typed here, where v1.10.1's schema
leaves the crop options untyped). The JSON types
follow A1111's: integer options are ``number`` (A1111 maps ``int`` to ``float``), so ``GET /options`` renders
``CLIP_stop_at_last_layers`` as ``2.0``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from .coercion import LaxBool, LaxFloat, LaxInt, LaxList, LaxStr

__all__ = ["Options", "Flags", "OPTION_TYPES", "OptionsUpdate", "SDAPI_OPTION_SCHEMAS"]

# JSON schema type → the pydantic-v1-lax type A1111's model used. "null" is what A1111's schema says for a few
# extension options whose type pydantic v1 could not name; their values ("None", "Alias from file", false) are
# accepted as they come, and the schema still says "null", as A1111's does.
_ANY_DOCUMENTED_AS_NULL = Annotated[Any, WithJsonSchema({"type": "null"})]
_TYPES: dict[str, Any] = {
    "boolean": LaxBool, "number": LaxFloat, "integer": LaxInt, "string": LaxStr, "array": LaxList,
    "null": _ANY_DOCUMENTED_AS_NULL,
}


def _schemas() -> dict[str, Any]:
    """v1.2.1's ``Options`` and ``Flags`` schemas, ``Options`` with the later options sdapi honours appended."""
    data = resources.files("sdapi.data")
    schemas = json.loads(data.joinpath("settings_schemas_v1.2.1.json").read_text(encoding="utf-8"))
    later = json.loads(data.joinpath("options_later.json").read_text(encoding="utf-8"))
    schemas["Options"]["properties"].update(later)
    return schemas


def _model(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    fields = {}
    for key, prop in schema["properties"].items():
        kind = _TYPES[prop.get("type", "null")]
        extra = {"description": prop["description"]} if "description" in prop else {}
        fields[key] = (Optional[kind], Field(default=prop.get("default"), title=prop.get("title"), **extra))
    config = ConfigDict(title=name, protected_namespaces=(), extra="ignore")
    return create_model(name, __config__=config, **fields)


# sdapi's own options, after A1111's (as an extension's options follow A1111's in its ``Options`` model).
SDAPI_OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "sdapi_fast_mode": {
        "title": "Sdapi Fast Mode", "type": "boolean", "default": False,
        "description": "sdapi: fast mode (compiled UNet and VAE decoder, channels_last, bf16/fp16 autocast); "
                       "changes pixels, so the infotext says so",
    },
}


def _with_sdapi_options(schemas: dict[str, Any]) -> dict[str, Any]:
    options = schemas["Options"]
    properties = {**options["properties"], **SDAPI_OPTION_SCHEMAS}
    return {**schemas, "Options": {**options, "properties": properties}}


_SCHEMAS = _with_sdapi_options(_schemas())
Options = _model("Options", _SCHEMAS["Options"])
Flags = _model("Flags", _SCHEMAS["Flags"])
OPTION_TYPES: dict[str, str] = {k: p.get("type", "null") for k, p in _SCHEMAS["Options"]["properties"].items()}
"""Each option's JSON type in A1111's ``Options`` model."""

OptionsUpdate = Annotated[dict[str, Any], WithJsonSchema({"title": "Req", "type": "object"})]
"""``POST /options`` body: any subset of the option map (A1111 declares a bare ``Dict[str, Any]``)."""
