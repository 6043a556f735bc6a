"""PNG info, memory, launch flags, and loading or unloading the checkpoint."""

from __future__ import annotations

from typing import Any

from sdapi.images import decode_image
from sdapi.pnginfo import png_info as read_png_info
from sdapi.serving.base import AppSettings, ServerState
from sdapi.system import cmd_flags as launch_cmd_flags
from sdapi.system import ram_usage


def png_info(image: str) -> dict[str, Any]:
    """``/png-info``: the infotext of a base64 image (``{"info": "", "items": {}}`` for a blank one)."""
    if not image.strip():
        return {"info": "", "items": {}}
    return read_png_info(decode_image(image.strip()))


def memory(state: ServerState) -> dict[str, Any]:
    """``/memory``: this process's RAM and the engine's device memory."""
    return {"ram": ram_usage(), "cuda": state.engine.memory()}


def cmd_flags(settings: AppSettings) -> dict[str, Any]:
    """``/cmd-flags``: A1111's flags with what this server was started with."""
    return launch_cmd_flags(settings)


def unload_checkpoint(state: ServerState) -> None:
    """``/unload-checkpoint``: free every device tensor the engine holds; the next job loads what it needs."""
    state.run_sync(state.engine.unload_all, "unload checkpoint")


def reload_checkpoint(state: ServerState) -> None:
    """``/reload-checkpoint``: load the selected checkpoint now."""
    state.run_sync(state.load_selected, "reload checkpoint")
