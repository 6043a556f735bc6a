"""Which model family a LoRA file was made for (SD 1.x/2.x or SDXL), so a file for the other one is skipped whole.

Shapes alone do not tell: an SD 1.5 LoRA's text-encoder layers fit SDXL's CLIP-L exactly, and some of its UNet
attention layers fit SDXL's too, so applying whatever fits would quietly change the image with a fraction of the
file. The family is read, in this order, from

* the file's ``ss_base_model_version`` metadata (kohya: ``sd_v1``, ``sd_v2``…, ``sdxl_base_v1-0``), then
* its layer names: ``lora_te2_`` (the second text encoder) exists only for SDXL; kohya's SD 1.x/2.x files name
  their single text encoder ``lora_te_``, its SDXL files ``lora_te1_``/``lora_te2_``.

A file that says neither (a UNet-only file without metadata) has no family, and its layers are matched one by one.
No torch here: the catalog and tests can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SD, SDXL = "sd", "sdxl"
BASE_MODEL_KEY = "ss_base_model_version"
LABELS = {SD: "SD 1.x/2.x", SDXL: "SDXL"}

# kohya layer-name prefixes that only one family's files use.
_SDXL_ONLY_PREFIX = "lora_te2_"
_SD_ONLY_PREFIX = "lora_te_"


def family_of_base_model(version: str | None) -> str | None:
    """The family a kohya ``ss_base_model_version`` names, or ``None`` for a missing or unknown value."""
    version = (version or "").strip().lower()
    if version.startswith("sdxl"):
        return SDXL
    if version.startswith("sd_v"):
        return SD
    return None


def family_of_file(layer_names: Iterable[str], metadata: Mapping[str, str]) -> str | None:
    """The family a LoRA file was made for: its metadata first, then its layer names; ``None`` when unknown.

    Args:
        layer_names: the file's kohya layer names (``lora_te2_text_model_…``).
        metadata: the file's ``__metadata__`` (empty for pickles).
    """
    found = family_of_base_model(metadata.get(BASE_MODEL_KEY))
    if found is not None:
        return found
    names = list(layer_names)
    if any(name.startswith(_SDXL_ONLY_PREFIX) for name in names):
        return SDXL
    if any(name.startswith(_SD_ONLY_PREFIX) for name in names):
        return SD
    return None


def mismatch(file_family: str | None, model_family: str) -> str | None:
    """Why a file of ``file_family`` cannot apply to a model of ``model_family``, or ``None`` when it may."""
    if file_family is None or file_family == model_family:
        return None
    return f"it was made for {LABELS[file_family]} and the current model is {LABELS[model_family]}"
