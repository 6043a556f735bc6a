"""Which LoRA files sdapi can apply, decided from tensor names alone (no torch, so the catalog can use it).

A kohya LoRA/LoCon file holds, per targeted layer, ``<layer>.lora_down.weight``, ``<layer>.lora_up.weight`` and
optionally ``<layer>.alpha``. LyCORIS formats store other tensors per layer; they are recognised by name so the log
can say what the file is. Anything else is refused as a whole, like A1111 v1.2.1 does ("Bad Lora layer name").
"""

from __future__ import annotations

from collections.abc import Iterable

DOWN, UP, ALPHA = "lora_down.weight", "lora_up.weight", "alpha"
KOHYA_SUFFIXES = frozenset({DOWN, UP, ALPHA})

# (tensor-suffix prefix, network type): formats that need weight reconstruction sdapi does not implement.
UNSUPPORTED_NETWORKS = (
    ("hada_", "LoHa"),
    ("lokr_", "LoKr"),
    ("dora_scale", "DoRA"),
    ("oft_", "OFT"),
    ("on_input", "IA3"),
    ("diff", "full-weight difference"),
)


class UnsupportedLora(ValueError):
    """A file that is not a kohya LoRA/LoCon (LoHa, LoKr, …): it is skipped with this message in the log."""


def split_key(key: str) -> tuple[str, str]:
    """Split a tensor name into the kohya layer name and the tensor suffix.

    Args:
        key: e.g. ``lora_unet_mid_block_attentions_0_proj_in.lora_down.weight``.

    Returns:
        ``(layer name, suffix)``; the suffix is ``""`` when the key has no ``.``.
    """
    layer, _, suffix = key.partition(".")
    return layer, suffix


def unsupported_reason(keys: Iterable[str]) -> str | None:
    """Why a file with these tensor names cannot be applied, or ``None`` when it is a kohya LoRA/LoCon.

    Args:
        keys: every tensor name in the file.

    Returns:
        A short reason naming the network type, e.g. ``"a LoHa network (hada_* tensors)"``.
    """
    unknown: set[str] = set()
    any_lora = False
    for key in keys:
        _, suffix = split_key(key)
        if suffix in KOHYA_SUFFIXES:
            any_lora = any_lora or suffix != ALPHA
            continue
        for prefix, network in UNSUPPORTED_NETWORKS:
            if suffix.startswith(prefix):
                return f"a {network} network ({prefix}* tensors)"
        unknown.add(suffix or key)
    if unknown:
        return f"tensors that are not kohya LoRA weights ({', '.join(sorted(unknown)[:3])})"
    if not any_lora:
        return "no lora_down/lora_up tensors"
    return None


def check_supported(keys: Iterable[str], source: str) -> None:
    """Raise ``UnsupportedLora`` unless the tensor names describe a kohya LoRA/LoCon.

    Args:
        keys: every tensor name in the file.
        source: the file, for the message.

    Raises:
        UnsupportedLora: naming the file and its network type.
    """
    reason = unsupported_reason(keys)
    if reason is not None:
        raise UnsupportedLora(f"{source} is {reason}, which sdapi cannot apply; it is skipped")
