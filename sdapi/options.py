"""A1111's settings (``opts``): the v1.2.1 option map with its defaults, persisted to ``config.json``.

The defaults file holds A1111 v1.2.1's defaults in their native types: ints stay ints here, although A1111's
``GET /options`` renders them as floats (that rendering belongs to the endpoint, not to the values).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sdapi.errors import InvalidRequest
from sdapi.protocol.settings import SDAPI_OPTION_SCHEMAS
from sdapi.protocol.settings import Options as OptionsModel

log = logging.getLogger("sdapi")


def default_options() -> dict[str, Any]:
    """A fresh copy of the v1.2.1 option defaults, with the later options sdapi honours (their A1111 defaults),
    then sdapi's own options' defaults."""
    data = resources.files("sdapi.data")
    defaults = json.loads(data.joinpath("options_v1.2.1.json").read_text(encoding="utf-8"))
    later = json.loads(data.joinpath("options_later.json").read_text(encoding="utf-8"))
    defaults.update({key: schema["default"] for key, schema in later.items()})
    defaults.update({key: schema["default"] for key, schema in SDAPI_OPTION_SCHEMAS.items()})
    return defaults


class Options:
    """Thread-safe option values with A1111's semantics for unknown keys (``KeyError``).

    Args:
        config_file: ``config.json`` in the data dir; ``None`` keeps everything in memory.
    """

    def __init__(self, config_file: Path | None = None):
        self.config_file = config_file
        self._defaults = default_options()
        self._data = copy.deepcopy(self._defaults)
        self._lock = threading.RLock()
        if config_file is not None and config_file.exists():
            self._load(config_file)

    def _load(self, path: Path) -> None:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable %s: %s", path, exc)
            return
        for key, value in saved.items():
            if key not in self._data:
                continue
            try:
                self._data[key] = coerce_option(key, value, self._defaults[key])
            except InvalidRequest as exc:
                # A value an older server saved unchecked would fail every job (or GET /options) from now on.
                log.warning("Ignoring saved %s: %s", path.name, exc)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> Any:
        """Value of a known option; ``KeyError`` like A1111 for an unknown one."""
        with self._lock:
            return self._data[key]

    def default(self, key: str) -> Any:
        """A1111 v1.2.1's default for a known option."""
        return copy.deepcopy(self._defaults[key])

    def get_int(self, key: str) -> int:
        return int(self.get(key))

    def get_float(self, key: str) -> float:
        return float(self.get(key))

    def set(self, key: str, value: Any) -> None:
        """Set a known option (``KeyError`` for unknown keys, as A1111's ``opts.set``)."""
        with self._lock:
            if key not in self._data:
                raise KeyError(key)
            self._data[key] = value

    def snapshot(self) -> dict[str, Any]:
        """A copy of every value."""
        with self._lock:
            return copy.deepcopy(self._data)

    def view(self, overrides: dict[str, Any] | None = None) -> "OptionsView":
        """What one job reads: the values now, with ``overrides`` on top; later changes do not reach it."""
        with self._lock:
            values = copy.deepcopy(self._data)
        return OptionsView(values, self._defaults).with_overrides(overrides or {})

    def set_unless_changed(self, values: dict[str, Any], since: "OptionsView") -> list[str]:
        """Set ``values`` except those whose option changed after ``since`` was taken; returns the keys set.

        A job's ``override_settings_restore_afterwards: false`` keeps its overrides, but never over a value a
        ``POST /options`` set while the job ran (that request came later).
        """
        applied = []
        with self._lock:
            for key, value in values.items():
                if self._data[key] == since.base(key):
                    self._data[key] = copy.deepcopy(value)
                    applied.append(key)
        return applied

    def save(self) -> None:
        """Persist to ``config.json`` atomically."""
        if self.config_file is None:
            return
        with self._lock:
            data = json.dumps(self._data, indent=4)
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.config_file.with_suffix(".json.tmp")
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, self.config_file)


class OptionsView:
    """Read-only option values for one job (``Options.view``).

    Args:
        values: every option's value as the job sees it.
        defaults: A1111's defaults.
        base: the shared values of overridden keys when the view was taken.
    """

    def __init__(self, values: dict[str, Any], defaults: dict[str, Any], base: dict[str, Any] | None = None):
        self._values = values
        self._defaults = defaults
        self._base = base or {}

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str) -> Any:
        """Value of a known option; ``KeyError`` for an unknown one."""
        return self._values[key]

    def default(self, key: str) -> Any:
        return copy.deepcopy(self._defaults[key])

    def base(self, key: str) -> Any:
        """The shared value of ``key`` when the view was taken, before any override."""
        return self._base.get(key, self._values[key])

    def with_overrides(self, overrides: dict[str, Any]) -> "OptionsView":
        """This view with ``overrides`` on top (an x/y/z cell's values over its job's)."""
        base = {**self._base, **{key: self.base(key) for key in overrides if key in self._values}}
        return OptionsView({**self._values, **copy.deepcopy(overrides)}, self._defaults, base)

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self._values)


def checked_option_values(options: Options | OptionsView, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` coerced to each option's type, in order, before any is applied.

    Raises:
        KeyError: the first unknown key, as A1111's ``opts.set`` does.
        InvalidRequest: a value of the wrong type, naming the option.
    """
    checked = {}
    for key, value in values.items():
        if key not in options:
            raise KeyError(key)
        checked[key] = coerce_option(key, value, options.default(key))
    return checked


# Options whose value must be one of a few words: A1111 stores anything and then fails every later job with it.
OPTION_CHOICES = {
    "samples_format": ("png", "jpg", "jpeg", "webp"),
    "grid_format": ("png", "jpg", "jpeg", "webp"),
    "randn_source": ("GPU", "CPU"),
    "ddim_discretize": ("uniform", "quad"),
    "live_preview_content": ("Combined", "Prompt", "Negative prompt"),
    "show_progress_type": ("Full", "Approx NN", "Approx cheap"),
    "uni_pc_variant": ("bh1", "bh2", "vary_coeff"),
    "uni_pc_skip_type": ("time_uniform", "time_quadratic", "logSNR"),
}


def coerce_option(key: str, value: Any, default: Any) -> Any:
    """A posted option value with the type A1111's ``Options`` model gives the key.

    Integral numbers of integer options stay ints (A1111 keeps what was posted; only ``GET`` renders floats).

    Raises:
        InvalidRequest: the value cannot have that type, or is not one of the option's choices.
    """
    try:
        coerced = _option_adapter(key).validate_python(value)
    except ValidationError as exc:
        raise InvalidRequest(f"option {key}: {exc.errors()[0]['msg']} (got {value!r})") from None
    if key in OPTION_CHOICES and coerced not in OPTION_CHOICES[key]:
        raise InvalidRequest(f"option {key}: must be one of {', '.join(OPTION_CHOICES[key])} (got {value!r})")
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(coerced, float):
        if coerced.is_integer():
            return int(coerced)
    return coerced


@functools.lru_cache(maxsize=None)
def _option_adapter(key: str):
    """The validator of one field of A1111's ``Options`` model (validating the whole model per key cost ~1 ms)."""
    return TypeAdapter(OptionsModel.model_fields[key].annotation)
