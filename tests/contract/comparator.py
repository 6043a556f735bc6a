"""Compare one of our responses with a recorded AUTOMATIC1111 v1.2.1 response.

The recordings (``tests/fixtures/a1111-v1.2.1/*.json``, see the shared set's ``PROVENANCE.md``) hold
``{"request", "status", "response", ...}``; base64 images in them are replaced by
``{"_b64_truncated", "_b64_length", "_decoded": {"format", "size", "mode", "bytes", "png_text"}}``.

:func:`compare_to_recording` walks the recorded response and ours together and reports every difference:

* **status**: equal.
* **JSON shape, everywhere (recursively)**: the same key set in every object, the same length for every array
  and the same JSON type for every value. ``int`` and ``float`` are different types (A1111 echoes
  ``cfg_scale: 7.0`` but ``denoising_strength: 0``), ``bool`` is not an ``int``, ``null`` is its own type.
* **values**: deterministic values are compared exactly, strings after the *substitutions* (the recorded
  model's name/hash → ours) have been applied to the recorded side.
* ``images[i]``: our entry is bare base64 (no ``data:`` prefix) of an image whose format, mode, size and
  PNG text-chunk keys equal the recorded ``_decoded`` ones; the ``parameters`` chunk is an infotext.
  Pixels, ``bytes`` and ``_b64_length`` are **not** compared: the recorded model has random weights that we
  do not have (pixel parity is the engine's own tests' business).
* ``info`` is a JSON *string* in both: both are parsed and compared with the same rules (path prefix ``info``).
* **infotexts** (``images[*].png_text.parameters`` and ``info.infotexts[*]``) are compared exactly, byte for
  byte, after substitution, after the values of noisy infotext fields have been replaced by a placeholder
  of the same shape (``<noisy:int>``), and after not-implemented infotext fields have been removed.
* **machine-specific** values (:data:`MACHINE_SPECIFIC_KEYS`: absolute paths such as ``filename``): shape
  only — both strings that are absolute paths with the same basename (after substitution), or both null.

Noisy fields (:data:`NOISY_REASONS` says why each one is noisy) are compared by JSON type only (infotext
fields: by the shape of the value). Which of them apply depends on the request, so callers pass the set; the
constants :data:`ALWAYS_NOISY`, :data:`NOISY_IF_RANDOM_SEED` and :data:`NOISY_IF_RANDOM_SUBSEED` are the
building blocks.

Field names (for ``noisy`` and ``not_implemented``) are paths: ``info.seed``, ``info.all_seeds[*]``,
``images[*].size``, ``[*].sha256`` for a top-level array; ``[*]`` stands for any index. Infotext fields are
``infotext:<Key>``, e.g. ``infotext:Seed`` (the exact key: ``Seed`` is not ``Seed resize from``).

``not_implemented`` names fields of features that sdapi accepts but does not implement yet (e.g. hires fix):
they are skipped entirely (JSON paths) or removed from both infotexts (``infotext:`` keys). Every use of it
must say which missing feature it stands for.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Iterable
from typing import Any

from PIL import Image

from sdapi.protocol.settings import SDAPI_OPTION_SCHEMAS

# -- what is noisy, and why ---------------------------------------------------------------------------------

_SEED_REASON = ("random when the request's seed is -1 (the default): A1111 resolves it with "
                "int(random.randrange(4294967294)); parameters.seed still echoes -1 and is compared")
_SUBSEED_REASON = ("random whenever the request's subseed is -1 (the default), even with subseed_strength 0: "
                   "A1111 always draws a variation seed; it only reaches the infotext when subseed_strength > 0")

NOISY_REASONS: dict[str, str] = {
    "info.job_timestamp": "wall-clock time of the job (%Y%m%d%H%M%S): differs on every run",
    "info.seed": _SEED_REASON,
    "info.all_seeds[*]": _SEED_REASON,
    "infotext:Seed": _SEED_REASON,
    "info.subseed": _SUBSEED_REASON,
    "info.all_subseeds[*]": _SUBSEED_REASON,
    "infotext:Variation seed": _SUBSEED_REASON,
}
"""Every field that may legitimately differ between two runs of the same request, with the reason."""

ALWAYS_NOISY: frozenset[str] = frozenset({"info.job_timestamp"})
"""Noisy in every txt2img response."""

NOISY_IF_RANDOM_SEED: frozenset[str] = frozenset({"info.seed", "info.all_seeds[*]", "infotext:Seed"})
"""Noisy when the request's ``seed`` is -1 or absent."""

NOISY_IF_RANDOM_SUBSEED: frozenset[str] = frozenset({"info.subseed", "info.all_subseeds[*]",
                                                     "infotext:Variation seed"})
"""Noisy when the request's ``subseed`` is -1 or absent."""

assert ALWAYS_NOISY | NOISY_IF_RANDOM_SEED | NOISY_IF_RANDOM_SUBSEED == set(NOISY_REASONS)

MACHINE_SPECIFIC_KEYS: frozenset[str] = frozenset({"filename"})
"""Object keys whose values are absolute paths on the recording machine: compared by shape only."""

INFOTEXT_PATHS: frozenset[str] = frozenset({"images[*].png_text.parameters", "info.infotexts[*]"})
"""Where infotexts live in a txt2img/img2img response."""

# A1111's own infotext parameter syntax (modules/generation_parameters_copypaste.py, re_param_code).
_RE_PARAM = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_INDEX = re.compile(r"\[\d+\]")


def compare_to_recording(recorded: dict, status: int, body: Any, *, substitutions: dict[str, str],
                         noisy: set[str], not_implemented: Iterable[str] = ()) -> list[str]:
    """Differences between our response and a recorded A1111 v1.2.1 response (empty list: they match).

    Args:
        recorded: a recording (``{"status", "response", ...}``).
        status: our HTTP status.
        body: our parsed JSON body.
        substitutions: recorded text → ours, applied to every recorded string (e.g. the recorded model's
            short hash and model name → ours); longer keys win where keys overlap.
        noisy: fields compared by type/shape only (see :data:`NOISY_REASONS`).
        not_implemented: fields of features sdapi does not implement yet, skipped (see the module docstring).

    Returns:
        Human-readable differences, one per line, each starting with the path where it was found.
    """
    cmp = _Comparison(substitutions, frozenset(noisy), frozenset(not_implemented))
    if status != recorded["status"]:
        cmp.diffs.append(f"status: ours {status}, A1111 {recorded['status']}")
    cmp.value("", recorded["response"], body)
    return cmp.diffs


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _is_absolute(path: str) -> bool:
    return path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path) is not None


def _shape(value: str) -> str:
    if re.fullmatch(r"-?\d+", value):
        return "int"
    if re.fullmatch(r"-?\d+\.\d+", value):
        return "float"
    return "text"


# Keys sdapi adds on purpose (documented extensions A1111's clients ignore); everything else must match. sdapi's
# own options follow A1111's in the options map, as an extension's do.
SDAPI_EXTENSIONS = frozenset({"info.warnings", *SDAPI_OPTION_SCHEMAS})

class _Comparison:
    def __init__(self, substitutions: dict[str, str], noisy: frozenset[str], not_implemented: frozenset[str]):
        self.substitutions = substitutions
        keys = sorted(substitutions, key=len, reverse=True)
        self._sub_re = re.compile("|".join(re.escape(k) for k in keys)) if keys else None
        self.noisy = noisy
        self.not_implemented = not_implemented
        self.diffs: list[str] = []

    def sub(self, text: str) -> str:
        return self._sub_re.sub(lambda m: self.substitutions[m.group(0)], text) if self._sub_re else text

    def diff(self, path: str, message: str) -> None:
        self.diffs.append(f"{path or '<body>'}: {message}")

    # -- JSON values --------------------------------------------------------------------------------------

    def value(self, path: str, rec: Any, ours: Any) -> None:
        pattern = _INDEX.sub("[*]", path)
        if pattern in self.not_implemented:
            return
        if pattern in ("images[*]", "image") and isinstance(rec, dict) and "_decoded" in rec:  # image: extras
            self.image(path, rec["_decoded"], ours)
            return
        key = path.rsplit(".", 1)[-1]
        if key in MACHINE_SPECIFIC_KEYS:
            self.machine_specific(path, rec, ours)
            return
        rec_type, our_type = _json_type(rec), _json_type(ours)
        if rec_type != our_type:
            self.diff(path, f"type: ours {our_type} {ours!r:.80}, A1111 {rec_type} {rec!r:.80}")
            return
        if pattern in self.noisy:
            return
        if rec_type == "object":
            self.obj(path, rec, ours)
        elif rec_type == "array":
            if len(rec) != len(ours):
                self.diff(path, f"length: ours {len(ours)}, A1111 {len(rec)}")
            for i, (r, o) in enumerate(zip(rec, ours)):
                self.value(f"{path}[{i}]", r, o)
        elif rec_type == "string":
            if pattern == "info":
                self.json_string(path, rec, ours)
            elif pattern in INFOTEXT_PATHS:
                self.infotext(path, rec, ours)
            elif self.sub(rec) != ours:
                self.diff(path, f"ours {ours!r}, A1111 {self.sub(rec)!r}")
        elif rec != ours:
            self.diff(path, f"ours {ours!r}, A1111 {rec!r}")

    def obj(self, path: str, rec: dict, ours: dict) -> None:
        missing = sorted(set(rec) - set(ours))
        extra = sorted(k for k in set(ours) - set(rec) if _child(path, k) not in SDAPI_EXTENSIONS)
        if missing:
            self.diff(path, f"keys missing from ours: {missing}")
        if extra:
            self.diff(path, f"keys A1111 does not have: {extra}")
        for k in rec:
            if k in ours:
                self.value(_child(path, k), rec[k], ours[k])

    def json_string(self, path: str, rec: str, ours: str) -> None:
        try:
            rec_parsed = json.loads(rec)
        except ValueError as exc:
            self.diff(path, f"recorded value is not JSON: {exc}")
            return
        try:
            ours_parsed = json.loads(ours)
        except ValueError as exc:
            self.diff(path, f"ours is not a JSON string: {exc}: {ours!r:.200}")
            return
        self.value(path, rec_parsed, ours_parsed)

    def machine_specific(self, path: str, rec: Any, ours: Any) -> None:
        if rec is None or ours is None:
            if rec is not ours:
                self.diff(path, f"ours {ours!r}, A1111 {rec!r}")
            return
        if not isinstance(ours, str) or not isinstance(rec, str):
            self.diff(path, f"type: ours {_json_type(ours)}, A1111 {_json_type(rec)}")
            return
        if not _is_absolute(ours):
            self.diff(path, f"not an absolute path: {ours!r}")
        if _basename(self.sub(rec)) != _basename(ours):
            self.diff(path, f"file name: ours {_basename(ours)!r}, A1111 {_basename(self.sub(rec))!r}")

    # -- images -------------------------------------------------------------------------------------------

    def image(self, path: str, decoded: dict, ours: Any) -> None:
        if not isinstance(ours, str):
            self.diff(path, f"type: ours {_json_type(ours)}, A1111 string (base64 image)")
            return
        if ours.startswith("data:"):
            self.diff(path, "ours has a data: URL prefix; A1111 sends bare base64")
            return
        try:
            image = Image.open(io.BytesIO(base64.b64decode(ours, validate=True)))
            image.load()
        except (binascii.Error, ValueError, OSError) as exc:
            self.diff(path, f"ours is not a base64 image: {exc}")
            return
        pattern = _INDEX.sub("[*]", path)
        if image.format != decoded["format"]:
            self.diff(f"{path}.format", f"ours {image.format}, A1111 {decoded['format']}")
        if image.mode != decoded["mode"]:
            self.diff(f"{path}.mode", f"ours {image.mode}, A1111 {decoded['mode']}")
        if f"{pattern}.size" not in self.not_implemented and list(image.size) != list(decoded["size"]):
            self.diff(f"{path}.size", f"ours {list(image.size)}, A1111 {list(decoded['size'])}")
        ours_text = dict(getattr(image, "text", None) or {})
        self.obj(f"{path}.png_text", decoded.get("png_text") or {}, ours_text)

    # -- infotexts ----------------------------------------------------------------------------------------

    def infotext(self, path: str, rec: str, ours: str) -> None:
        rec_norm, ours_norm = self.normalise_infotext(self.sub(rec)), self.normalise_infotext(ours)
        if rec_norm == ours_norm:
            return
        rec_head, _, rec_params = rec_norm.rpartition("\n")
        ours_head, _, ours_params = ours_norm.rpartition("\n")
        if rec_head != ours_head:
            self.diff(path, f"infotext prompt lines: ours {ours_head!r}, A1111 {rec_head!r}")
        if rec_params != ours_params:
            rec_fields, ours_fields = _params(rec_params) or [], _params(ours_params) or []
            rec_map, ours_map = dict(rec_fields), dict(ours_fields)
            details = []
            for k in rec_map.keys() - ours_map.keys():
                details.append(f"missing {k!r}")
            for k in ours_map.keys() - rec_map.keys():
                details.append(f"extra {k!r}")
            for k in rec_map.keys() & ours_map.keys():
                if rec_map[k] != ours_map[k]:
                    details.append(f"{k!r}: ours {ours_map[k]!r}, A1111 {rec_map[k]!r}")
            if not details:
                details.append("field order or separators differ")
            self.diff(path, f"infotext parameters ({'; '.join(sorted(details))}):\n"
                            f"    ours : {ours_params}\n    A1111: {rec_params}")

    def normalise_infotext(self, text: str) -> str:
        """Noisy values → ``<noisy:shape>``, not-implemented fields dropped; unparsable texts stay as they are."""
        head, sep, last = text.rpartition("\n")
        fields = _params(last)
        if fields is None:
            return text
        out = []
        for key, value in fields:
            if f"infotext:{key}" in self.not_implemented:
                continue
            if f"infotext:{key}" in self.noisy:
                value = f"<noisy:{_shape(value)}>"
            out.append(f"{key}: {value}")
        return f"{head}{sep}{', '.join(out)}"


def _params(line: str) -> list[tuple[str, str]] | None:
    """A1111's ``Key: value, Key: value`` line as pairs, or ``None`` when the line does not round-trip."""
    fields = [(m.group(1).strip(), m.group(2)) for m in _RE_PARAM.finditer(line) if m.group(0)]
    if ", ".join(f"{k}: {v}" for k, v in fields) != line:
        return None
    return fields
