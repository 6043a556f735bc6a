"""Reading a kohya / lora-scripts config file (TOML or JSON) into a :class:`TrainRequest`.

As kohya's ``--config_file`` does, TOML sections are flattened: section names are ignored and every key becomes
an argument. Keys sdapi's trainer does not know are dropped with a warning (sd-scripts keeps them unused too).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import tomllib

from sdapi.protocol.training import TrainRequest

log = logging.getLogger("sdapi")


def flatten(table: dict[str, Any]) -> dict[str, Any]:
    """Every key of a (possibly sectioned) table at one level; later sections win, as in kohya."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and key != "extra_args":
            flat.update(flatten(value))
        else:
            flat[key] = value
    return flat


def read_config(path: Path) -> dict[str, Any]:
    """The flattened keys of a ``.toml`` or ``.json`` config."""
    text = Path(path).read_text(encoding="utf-8")
    table = json.loads(text) if Path(path).suffix.lower() == ".json" else tomllib.loads(text)
    return flatten(table)


def request_from_config(values: dict[str, Any]) -> TrainRequest:
    """A request from config keys; unknown keys are logged and dropped."""
    known = {k: v for k, v in values.items() if k in TrainRequest.model_fields}
    dropped = sorted(set(values) - set(known))
    if dropped:
        log.warning("Config keys not used by sdapi's trainer: %s", ", ".join(dropped))
    return TrainRequest(**known)
