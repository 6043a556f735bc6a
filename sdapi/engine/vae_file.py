"""A VAE file's weights in the layout of the loaded model's diffusers ``AutoencoderKL``, offline.

VAE files come in the original ldm layout (``encoder.down.0.block.0.conv1.weight``, ``quant_conv.weight``, mid
attention as 1x1 convolutions; sometimes under ``first_stage_model.``, as inside a whole checkpoint, which
``--vae-path`` may name) or in diffusers' layout (``encoder.down_blocks.0.resnets.0.conv1.weight``, with the old
``query``/``key``/``value``/``proj_attn`` attention names or the new ``to_q``/…). A1111 drops ``loss.*`` and
``model_ema.*`` keys and then loads strictly; so does this: every weight of the model must be there with its shape,
and nothing else, or the file is refused before any weight changes.

Shapes are all a file can be checked by: the SD 1.x/2.x and SDXL VAEs share one architecture, so one of them
loads on the other (as it does in A1111) and only the images show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from sdapi.engine.errors import UnsupportedRequest
from sdapi.engine.ldm_layout import VAE_PREFIX, ldm_vae_key

IGNORED_PREFIXES = ("loss.", "model_ema.")
# diffusers' attention names before its 0.14 rename, in its own VAE files.
OLD_ATTENTION_NAMES = ((".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."),
                       (".proj_attn.", ".to_out.0."))
DIFFUSERS_PREFIX = "vae."


class VaeMismatch(UnsupportedRequest):
    """A VAE file that is unreadable or does not fit the loaded model's VAE (422)."""


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or pickled (``torch.load(weights_only=True)``) VAE file.

    Raises:
        VaeMismatch: an unreadable file.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            return load_file(str(path), device="cpu")
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same answer for the user
        raise VaeMismatch(f"VAE {path.name}: not readable as safetensors or with torch.load(weights_only=True) "
                          f"({type(exc).__name__})") from exc
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]  # Lightning checkpoints nest their weights
    if not isinstance(data, dict):
        raise VaeMismatch(f"VAE {path.name}: holds no state dict")
    return {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _without_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VAE's own keys: a whole checkpoint's ``first_stage_model.`` part (or a bundle's ``vae.`` part), and
    without what A1111 ignores."""
    for prefix in (VAE_PREFIX, DIFFUSERS_PREFIX):
        if any(key.startswith(prefix) for key in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
            break
    return {k: v for k, v in state_dict.items() if not k.startswith(IGNORED_PREFIXES)}


def to_model_layout(state_dict: dict[str, torch.Tensor], vae: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    """``state_dict`` renamed (and its 1x1 attention convolutions reshaped) to ``vae``'s own keys.

    Args:
        state_dict: a VAE file's tensors (:func:`read_state_dict`).
        vae: the loaded ``AutoencoderKL`` whose weights it would replace.
        name: the file's name, for messages.

    Raises:
        VaeMismatch: keys missing, left over, or of other shapes than the model's.
    """
    target = vae.state_dict()
    n_blocks = len(vae.config.block_out_channels)
    from_ldm = {ldm_vae_key(key, n_blocks): key for key in target}
    converted: dict[str, torch.Tensor] = {}
    unexpected, wrong_shape = [], []
    for key, value in _without_prefix(state_dict).items():
        own = key if key in target else _renamed_attention(key)
        own = own if own in target else from_ldm.get(key)
        if own is None:
            unexpected.append(key)
            continue
        expected = target[own].shape
        if value.shape != expected and value.numel() == target[own].numel() and value.dim() != len(expected):
            value = value.reshape(expected)  # ldm's 1x1 attention convolutions are diffusers' Linear layers
        if value.shape != expected:
            wrong_shape.append(f"{key} {tuple(value.shape)} (the model's is {tuple(expected)})")
            continue
        converted[own] = value
    missing = [key for key in target if key not in converted]
    if missing or unexpected or wrong_shape:
        raise VaeMismatch(f"VAE {name} does not fit this checkpoint's VAE: " + _problems(missing, unexpected,
                                                                                          wrong_shape))
    return converted


def _renamed_attention(key: str) -> str:
    for old, new in OLD_ATTENTION_NAMES:
        key = key.replace(old, new)
    return key


def _problems(missing: list[str], unexpected: list[str], wrong_shape: list[str]) -> str:
    parts = []
    for what, keys in (("other shapes", wrong_shape), ("missing", missing), ("unknown keys", unexpected)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            parts.append(f"{what}: {shown}")
    return "; ".join(parts)
