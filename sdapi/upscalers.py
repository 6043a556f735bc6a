"""The upscaler registry: one row per upscaler this server really has (``/sdapi/v1/upscalers``).

A1111 lists "None", "Lanczos" and "Nearest" first, with ``scale`` 4; model-based upscalers (ESRGAN, ...) are only
listed once they can run here.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class UpscalerSpec:
    """One upscaler.

    Args:
        name: A1111's display name, the value clients send as ``hr_upscaler``/``upscaler_1``.
        resample: PIL resampling filter, or ``None`` for "None" (no upscaling).
        scale: the ``scale`` A1111 reports.
    """

    name: str
    resample: Image.Resampling | None
    scale: float = 4.0

    def as_item(self) -> dict:
        return {"name": self.name, "model_name": None, "model_path": None, "model_url": None, "scale": self.scale}

    def upscale(self, image: Image.Image, width: int, height: int) -> Image.Image:
        """``image`` resized to ``width``x``height`` (unchanged for "None")."""
        if self.resample is None:
            return image
        return image.resize((width, height), resample=self.resample)


UPSCALERS: tuple[UpscalerSpec, ...] = (
    UpscalerSpec("None", None),
    UpscalerSpec("Lanczos", Image.Resampling.LANCZOS),
    UpscalerSpec("Nearest", Image.Resampling.NEAREST),
)


def find_upscaler(name: str) -> UpscalerSpec | None:
    """The row named ``name`` (exact, as A1111 matches), or ``None``."""
    return next((u for u in UPSCALERS if u.name == name), None)
