"""``/sdapi/v1/loras`` items (the built-in Lora extension's ``create_lora_json``, A1111 v1.2.1)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["LoraItem"]


class LoraItem(BaseModel):
    """One LoRA file.

    Args:
        name: file stem.
        alias: ``ss_output_name`` metadata, else the name.
        path: absolute file path.
        metadata: safetensors metadata, JSON-looking values decoded, kohya's display order.
    """

    model_config = ConfigDict(title="LoraItem")

    name: str
    alias: str
    path: str
    metadata: dict[str, Any]
