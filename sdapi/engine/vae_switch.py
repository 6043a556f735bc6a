"""Swapping a loaded model's VAE weights for a VAE file's, and back, without reloading the checkpoint.

A1111's ``sd_vae.load_vae``: the first time a model takes another VAE, a copy of its own VAE weights is kept (on
the CPU) to go back to; a switch copies the new weights into the same modules, so the UNet, the text encoders,
LoRA hooks and fast mode's compiled decoder (whose weights are graph inputs) stay as they are. The last VAE file
read is kept, so jobs alternating between it and the checkpoint's own VAE do not read it again (A1111's
``sd_vae_checkpoint_cache`` keeps none by default and reads it each time).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from sdapi.engine.vae_file import VaeMismatch, read_state_dict, to_model_layout

log = logging.getLogger("sdapi")


FileVersion = tuple[Path, int, int]  # path, mtime_ns, size


def file_version(path: Path) -> FileVersion:
    stat = path.stat()
    return path, stat.st_mtime_ns, stat.st_size


@dataclass
class VaeState:
    """Which weights a model's VAE holds.

    Args:
        current: the version of the VAE file loaded into it (``None``: the checkpoint's own weights).
        own: a CPU copy of the checkpoint's own VAE weights, taken before the first switch.
    """

    current: FileVersion | None = None
    own: dict[str, torch.Tensor] | None = None


class VaeSwitcher:
    """Puts the VAE a job asks for into a model's VAE modules."""

    def __init__(self):
        self._last: tuple[FileVersion, dict[str, torch.Tensor]] | None = None
        self._lock = threading.Lock()

    def apply(self, model, vae_file: Path | None) -> None:
        """Make ``model``'s VAE hold ``vae_file``'s weights (``None``: the checkpoint's own).

        Raises:
            VaeMismatch: a file that is gone, unreadable or does not fit the model (nothing is changed then).
        """
        state: VaeState = model.vae_state or VaeState()
        model.vae_state = state
        try:
            wanted = file_version(Path(vae_file)) if vae_file is not None else None
        except OSError as exc:
            raise VaeMismatch(f"VAE {Path(vae_file).name}: no such file") from exc
        if wanted == state.current:
            return
        vae = model.pipe.vae
        if wanted is None:
            log.info("Restoring the checkpoint's own VAE")
            weights = state.own
        else:
            # Converted (and checked against the model) before anything changes.
            weights = to_model_layout(self._read(wanted), vae, wanted[0].name)
            if state.own is None:  # only ever taken while the modules hold the checkpoint's own weights
                state.own = {k: v.detach().to("cpu", copy=True) for k, v in vae.state_dict().items()}
            log.info("Loading VAE weights from %s", wanted[0].name)
        with torch.no_grad():
            vae.load_state_dict(weights, strict=True)
        state.current = wanted

    def _read(self, version: FileVersion) -> dict[str, torch.Tensor]:
        """The file's tensors, from the one-file cache while it is unchanged."""
        with self._lock:
            if self._last is None or self._last[0] != version:
                self._last = (version, read_state_dict(version[0]))
            return self._last[1]

    def clear(self) -> None:
        """Drop the cached file (``/unload-checkpoint``)."""
        with self._lock:
            self._last = None
