"""kohya's output file names: ``{name}-{epoch:06d}.safetensors`` per epoch, ``{name}.safetensors`` at the end."""

from __future__ import annotations

import re


def epoch_file_name(name: str, epoch: int) -> str:
    """kohya's per-epoch file name ``{name}-{epoch:06d}.safetensors``."""
    return f"{name}-{epoch:06d}.safetensors"


def output_file_pattern(name: str) -> str:
    """A regex (unanchored) for every file a job named ``name`` writes: epochs, the final file, a cancel save."""
    return rf"{re.escape(name)}(-\d{{6}}|-cancelled)?\.safetensors"
