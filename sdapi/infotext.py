"""A1111 v1.2.1 infotext: the ``parameters`` PNG chunk and ``info.infotexts`` entries.

Pure string work. Order and formatting follow ``create_infotext`` at v1.2.1: the base keys, ``Version``, then the
extra generation params (v1.3.0 moved the extras before ``Version``; v1.2.1 users see them after it).
"""

from __future__ import annotations

import json
import re
from typing import Any

A1111_VERSION = "v1.2.1"


class LaterQuoted(str):
    """The value of a field A1111 added after v1.2.1 (``Lora hashes``), quoted as v1.4+ quotes it.

    v1.4+ writes a value holding ``,``, ``:`` or a newline as a JSON string, so ``Lora hashes: "name: 0123…"``
    reads back the same in later A1111 versions and tools.
    """


def quote(value: Any) -> str:
    """v1.2.1 quoting: only values containing a comma are escaped and wrapped in double quotes."""
    text = str(value)
    if isinstance(value, LaterQuoted):
        return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text
    if "," not in text:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_params(params: dict[str, Any]) -> str:
    """``k: v`` pairs joined by ``", "``; ``None`` values left out, ``k`` alone when the value equals the key."""
    return ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None)


def create_infotext(prompt: str, negative_prompt: str, params: dict[str, Any]) -> str:
    """The whole infotext for one image.

    Args:
        prompt: this image's prompt (``<lora:...>`` tags kept).
        negative_prompt: this image's negative prompt; the line is left out when empty.
        params: ordered generation parameters (see ``generation_params``).
    """
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{format_params(params)}".strip()


def generation_params(
    *,
    steps: int,
    sampler: str,
    cfg_scale: Any,
    schedule_type: str | None = None,
    seed: int,
    width: int,
    height: int,
    model_hash: str | None,
    model_name: str | None,
    vae_hash: str | None = None,
    vae_name: str | None = None,
    subseed: int,
    subseed_strength: Any,
    seed_resize_from: tuple[Any, Any],
    denoising_strength: Any,
    conditional_mask_weight: Any = None,
    clip_skip: int,
    ensd: Any = 0,
    randn_source: str = "GPU",
    s_min_uncond: Any = 0,
    image_cfg_scale: Any = None,
    face_restoration: str | None = None,
    extra: dict[str, Any] | None = None,
    version: str | None = A1111_VERSION,
) -> dict[str, Any]:
    """The ordered parameter dict of v1.2.1's ``create_infotext`` for one image."""
    resize_w, resize_h = seed_resize_from
    params: dict[str, Any] = {
        "Steps": steps,
        "Sampler": sampler,
        "Schedule type": schedule_type,  # later A1111; only for a schedule type v1.2.1 has no sampler name for
        "CFG scale": cfg_scale,
        "Image CFG scale": image_cfg_scale,
        "Seed": seed,
        "Face restoration": face_restoration,
        "Size": f"{width}x{height}",
        "Model hash": model_hash,
        "Model": model_name,
        "VAE hash": vae_hash,  # later A1111 (v1.5+): only when a VAE file replaced the checkpoint's own
        "VAE": vae_name,
        "Variation seed": None if subseed_strength == 0 else subseed,
        "Variation seed strength": None if subseed_strength == 0 else subseed_strength,
        # v1.2.1 only leaves this out when a side is exactly 0, so API defaults print "-1x-1" (fixed in v1.5.0).
        "Seed resize from": None if resize_w == 0 or resize_h == 0 else f"{resize_w}x{resize_h}",
        "Denoising strength": denoising_strength,
        "Conditional mask weight": conditional_mask_weight,
        "Clip skip": None if clip_skip <= 1 else clip_skip,
        "ENSD": None if ensd == 0 else ensd,
        "RNG": None if randn_source == "GPU" else randn_source,
        "NGMS": None if s_min_uncond == 0 else s_min_uncond,
        "Version": version,
    }
    params.update(extra or {})
    return params


# A1111 v1.2.1's infotext grammar: ``Key: value`` pairs, a value either a double-quoted string (escaped quotes
# allowed, not unescaped) or anything up to the next comma.
_PARAM = re.compile(r'\s*([\w ]+):\s*("(?:\\"[^,]|\\"|\\|[^\"])+"|[^,]*)(?:,|$)')
_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")


def parse_generation_parameters(text: str) -> dict[str, Any]:
    """Parse an infotext back into fields, with A1111 v1.2.1's ``parse_generation_parameters`` semantics.

    The last line holds the parameters only if it has at least three ``Key: value`` pairs; ``WxH`` values are
    split into ``Key-1``/``Key-2``; ``Clip skip`` and ``Hires resize-1/-2`` get their defaults when absent.

    Returns:
        ``{"Prompt", "Negative prompt", <Key>: str, ...}``.
    """
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    result: dict[str, Any] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in _PARAM.findall(last):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        size = _IMAGE_SIZE.match(value)
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    result.setdefault("Clip skip", "1")
    if "Hires resize-1" not in result:
        result["Hires resize-1"] = 0
        result["Hires resize-2"] = 0
    return result
