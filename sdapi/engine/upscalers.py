"""The upscaler registry: A1111's latent upscale modes, its pixel upscalers and the model files found on disk.

Data tables and PIL only; running a model upscaler is the engine's job (a ``ModelRunner`` is passed in).

* Latent modes (hires fix only) interpolate the latent with ``torch.nn.functional.interpolate``.
* Pixel upscalers ("None", "Lanczos", "Nearest") need no weights and are always listed first, ``scale`` 4, as
  A1111 lists them.
* Model upscalers are ESRGAN / Real-ESRGAN / SwinIR files a user drops into ``models/ESRGAN``,
  ``models/RealESRGAN`` or ``models/SwinIR``; each file is listed (by file name, or by A1111's display name for
  the Real-ESRGAN releases) only while it is there.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

LANCZOS = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class LatentMode:
    """One of A1111's ``latent_upscale_modes``.

    Args:
        name: the ``hr_upscaler`` value.
        mode: ``torch.nn.functional.interpolate`` mode.
        antialias: its ``antialias`` flag.
    """

    name: str
    mode: str
    antialias: bool = False


LATENT_MODES: tuple[LatentMode, ...] = (
    LatentMode("Latent", "bilinear"),
    LatentMode("Latent (antialiased)", "bilinear", antialias=True),
    LatentMode("Latent (bicubic)", "bicubic"),
    LatentMode("Latent (bicubic antialiased)", "bicubic", antialias=True),
    LatentMode("Latent (nearest)", "nearest"),
    LatentMode("Latent (nearest-exact)", "nearest-exact"),
)
DEFAULT_LATENT_MODE = "Latent"


def find_latent_mode(name: str | None) -> LatentMode | None:
    """The latent mode named ``name`` (``None`` means A1111's default, "Latent"), or ``None`` if it is not one."""
    name = DEFAULT_LATENT_MODE if name is None else name
    return next((m for m in LATENT_MODES if m.name == name), None)


@dataclass(frozen=True)
class UpscalerSpec:
    """One upscaler.

    Args:
        name: A1111's display name, the value clients send as ``hr_upscaler``/``upscaler_1``.
        resample: PIL resampling filter, or ``None`` for "None" and for model upscalers.
        scale: the ``scale`` A1111 reports.
        model_path: the weights of a model upscaler.
        model_name: A1111's ``model_name`` column (the upscaler family's model name).
    """

    name: str
    resample: Image.Resampling | None
    scale: float = 4.0
    model_path: Path | None = None
    model_name: str | None = None

    @property
    def is_model(self) -> bool:
        return self.model_path is not None

    def as_item(self) -> dict:
        path = str(self.model_path) if self.model_path is not None else None
        return {"name": self.name, "model_name": self.model_name, "model_path": path, "model_url": None,
                "scale": self.scale}

    def upscale(self, image: Image.Image, width: int, height: int) -> Image.Image:
        """``image`` resized to ``width``x``height`` with the filter (unchanged for "None")."""
        if self.resample is None:
            return image
        return image.resize((width, height), resample=self.resample)


@dataclass(frozen=True)
class Tiling:
    """A1111's ``ESRGAN_tile``/``ESRGAN_tile_overlap`` options: ``size`` 0 runs the whole image at once."""

    size: int = 192
    overlap: int = 8

    @classmethod
    def from_options(cls, options) -> "Tiling":
        return cls(int(options.get("ESRGAN_tile")), int(options.get("ESRGAN_tile_overlap")))


#: Runs one pass of a model upscaler over an image (its native scale). Provided by the engine.
ModelRunner = Callable[[UpscalerSpec, Image.Image], Image.Image]

UPSCALERS: tuple[UpscalerSpec, ...] = (
    UpscalerSpec("None", None),
    UpscalerSpec("Lanczos", Image.Resampling.LANCZOS),
    UpscalerSpec("Nearest", Image.Resampling.NEAREST),
)


@dataclass(frozen=True)
class ModelFamily:
    """A folder of model upscalers.

    Args:
        folder: the folder under ``models/``.
        model_name: A1111's ``model_name`` for its files.
        suffixes: file types listed.
        known: file stem -> (A1111 display name, scale) for the releases A1111 names itself.
        needs_spandrel: the architecture is only available through spandrel.
    """

    folder: str
    model_name: str | None
    suffixes: tuple[str, ...]
    known: dict[str, tuple[str, float]]
    needs_spandrel: bool = False


_WEIGHTS = (".pth", ".pt", ".safetensors")
MODEL_FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily("ESRGAN", "ESRGAN_4x", _WEIGHTS, {}),
    ModelFamily("RealESRGAN", None, _WEIGHTS, {
        "realesr-general-x4v3": ("R-ESRGAN General 4xV3", 4.0),
        "realesr-general-wdn-x4v3": ("R-ESRGAN General WDN 4xV3", 4.0),
        "realesr-animevideov3": ("R-ESRGAN AnimeVideo", 4.0),
        "RealESRGAN_x4plus": ("R-ESRGAN 4x+", 4.0),
        "RealESRGAN_x4plus_anime_6B": ("R-ESRGAN 4x+ Anime6B", 4.0),
        "RealESRGAN_x2plus": ("R-ESRGAN 2x+", 2.0),
    }),
    ModelFamily("SwinIR", "SwinIR 4x", _WEIGHTS, {}, needs_spandrel=True),
)


def spandrel_installed() -> bool:
    """Whether the spandrel loader library is installed (needed for architectures sdapi has no own code for)."""
    return importlib.util.find_spec("spandrel") is not None


def model_upscalers(models_root: Path) -> list[UpscalerSpec]:
    """The model upscaler files under ``models_root`` (A1111's ``models/``), family by family, sorted by name."""
    found = []
    for family in MODEL_FAMILIES:
        folder = Path(models_root) / family.folder
        if not folder.is_dir() or (family.needs_spandrel and not spandrel_installed()):
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in family.suffixes):
            name, scale = family.known.get(path.stem, (path.stem, 4.0))
            found.append(UpscalerSpec(name, None, scale, model_path=path, model_name=family.model_name))
    return found


def available_upscalers(models_root: Path | None) -> list[UpscalerSpec]:
    """Everything ``/sdapi/v1/upscalers`` lists: the pixel upscalers, then the model files present now."""
    return list(UPSCALERS) + (model_upscalers(models_root) if models_root is not None else [])


def find_upscaler(name: str, upscalers: list[UpscalerSpec] | tuple[UpscalerSpec, ...] = UPSCALERS
                  ) -> UpscalerSpec | None:
    """The row named ``name`` (exact, as A1111 matches), or ``None``."""
    return next((u for u in upscalers if u.name == name), None)


def _one_pass(spec: UpscalerSpec, image: Image.Image, scale: float, run_model: ModelRunner | None) -> Image.Image:
    """A1111's ``do_upscale``: the filter at ``scale``, or one pass of the model at its own scale."""
    if spec.is_model:
        if run_model is None:
            raise RuntimeError(f"upscaler {spec.name} needs the engine to run")
        return run_model(spec, image)
    if spec.resample is None:
        return image
    return image.resize((int(image.width * scale), int(image.height * scale)), resample=spec.resample)


def upscale_by(spec: UpscalerSpec, image: Image.Image, scale: float, run_model: ModelRunner | None = None
               ) -> Image.Image:
    """A1111's ``Upscaler.upscale``: up to three passes until the target is reached, then Lanczos to exactly it.

    Args:
        spec: the upscaler.
        image: the source.
        scale: the factor; the result is ``int(width * scale) x int(height * scale)``.
        run_model: runs a model upscaler once (required for model rows).
    """
    dest = (int(image.width * scale), int(image.height * scale))
    for _ in range(3):
        before = image.size
        image = _one_pass(spec, image, scale, run_model)
        if image.size == before or (image.width >= dest[0] and image.height >= dest[1]):
            break
    if image.size != dest:
        image = image.resize(dest, resample=LANCZOS)
    return image


def enlarger(spec: UpscalerSpec | None, run_model: ModelRunner | None = None):
    """An ``enlarge`` callable for :func:`sdapi.resize.resize_image` (A1111's ``resize`` with ``upscaler_name``).

    Returns:
        ``None`` for no upscaler or "None" (plain Lanczos), else ``(image, w, h) -> image``: the upscaler by
        ``max(w / width, h / height)`` when that enlarges, then Lanczos to exactly ``w x h``.
    """
    if spec is None or spec.name == "None":
        return None

    def enlarge(image: Image.Image, width: int, height: int) -> Image.Image:
        scale = max(width / image.width, height / image.height)
        if scale > 1.0:
            image = upscale_by(spec, image, scale, run_model)
        if image.size != (width, height):
            image = image.resize((width, height), resample=LANCZOS)
        return image

    return enlarge
