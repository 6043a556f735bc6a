"""The extension's preprocessors (``scripts/preprocessor/*``, ``supported_preprocessor.py``) as one data table.

Each row gives what ``/controlnet/module_list`` shows and how a unit's numbers are checked: its name (what units
and ``module_list`` use), its label (``alias_names``), its sliders (range and default of ``processor_res``,
``threshold_a``, ``threshold_b``), its sorting priority and tags. The pure image operations run here; the
model-based ones are listed and refused with the annotator file they would need.

A quirk kept from the extension: its legacy preprocessors store their resolution range where the list does not
read it, so every preprocessor but ``invert`` shows (and bounds) the default Resolution slider, 64 to 2048.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from sdapi.controlnet.image_ops import hwc3, resize_with_pad

# (image H x W x 3 uint8, resolution, slider 1, slider 2) -> map
Detector = Callable[[np.ndarray, float, float, float], np.ndarray]
ANNOTATOR_ROOT = "extensions/sd-webui-controlnet/annotator/downloads"


@dataclass(frozen=True)
class Slider:
    """A preprocessor parameter (``PreprocessorParameter``): its label, range, step and default."""

    label: str = "EMPTY_LABEL"
    minimum: float = 0.0
    maximum: float = 1.0
    value: float = 0.5
    step: float = 0.01
    visible: bool = True

    def api_json(self) -> dict:
        """As ``module_detail`` lists it."""
        return {"name": self.label, "value": self.value, "min": self.minimum, "max": self.maximum, "step": self.step}

    def checked(self, value: float) -> float:
        """``value``, or the default when it lies outside the range (the extension's ``bound_check_params``)."""
        return self.value if value < self.minimum or value > self.maximum else value


HIDDEN = Slider(visible=False)
RESOLUTION = Slider("Resolution", 64, 2048, 512, 8)


@dataclass(frozen=True)
class Preprocessor:
    """One row of the table.

    Args:
        name: the key units use.
        label: the display name (``alias_names``); default the name.
        run: the pure image operation, or ``None`` for a model-based preprocessor.
        annotator: a model-based preprocessor's ``(file, folder)`` under the extension's annotator downloads.
        slider_1, slider_2: ``threshold_a`` and ``threshold_b``.
        resolution: ``processor_res``.
        priority: the extension's ``sorting_priority`` (higher first).
        model_free: ``do_not_need_model`` (reference and revision preprocessors).
    """

    name: str
    label: str | None = None
    run: Detector | None = None
    annotator: tuple[str, str] | None = None
    slider_1: Slider = HIDDEN
    slider_2: Slider = HIDDEN
    resolution: Slider = RESOLUTION
    priority: int = 0
    tags: tuple[str, ...] = ()
    model_free: bool = False

    @property
    def shown(self) -> str:
        return self.label or self.name

    def detail(self) -> dict:
        """``module_detail``'s entry."""
        sliders = [s.api_json() for s in (self.resolution, self.slider_1, self.slider_2) if s.visible]
        return {"model_free": self.model_free, "sliders": sliders}


def _none(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    return image


def _invert(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    return 255 - hwc3(image)


def _canny(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    padded, remove_pad = resize_with_pad(image, res)
    return remove_pad(cv2.cvtColor(cv2.Canny(padded, int(a), int(b)), cv2.COLOR_GRAY2RGB))


def _scribble_xdog(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    padded, remove_pad = resize_with_pad(image, res)
    fine = cv2.GaussianBlur(padded.astype(np.float32), (0, 0), 0.5)
    coarse = cv2.GaussianBlur(padded.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(coarse - fine, axis=2)).clip(0, 255).astype(np.uint8)
    result = np.zeros_like(padded, dtype=np.uint8)
    result[2 * (255 - dog) > a] = 255
    return remove_pad(result)


def _threshold(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    padded, remove_pad = resize_with_pad(image, res)
    result = np.zeros_like(padded, dtype=np.uint8)
    result[np.min(padded, axis=2) > a] = 255
    return remove_pad(result)


def _lineart_standard(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    padded, remove_pad = resize_with_pad(image, res)
    x = padded.astype(np.float32)
    intensity = np.min(cv2.GaussianBlur(x, (0, 0), 6.0) - x, axis=2).clip(0, 255)
    strong = intensity[intensity > 8]
    # Normalised by the median line strength (at least 16) so faint and bold drawings come out alike.
    intensity /= max(16, np.median(strong)) if strong.size else 16
    intensity *= 127
    return hwc3(remove_pad(intensity.clip(0, 255).astype(np.uint8)))


def _tile_resample(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    image = hwc3(image)
    if a < 1.1:
        return image
    h, w = int(float(image.shape[0]) / float(a)), int(float(image.shape[1]) / float(a))
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _blur_gaussian(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    padded, remove_pad = resize_with_pad(image, res)
    return cv2.GaussianBlur(remove_pad(padded), (0, 0), float(a))


def _model(name: str, label: str | None, file: str, folder: str, priority: int = 0,
           tags: tuple[str, ...] = (), **sliders) -> Preprocessor:
    return Preprocessor(name, label, annotator=(file, folder), priority=priority, tags=tags, **sliders)


PREPROCESSORS: tuple[Preprocessor, ...] = (
    Preprocessor("none", run=_none, priority=10, tags=("InstructP2P",)),
    Preprocessor("canny", run=_canny, priority=100, tags=("Canny",),
                 slider_1=Slider("Low Threshold", 1, 255, 100, 1), slider_2=Slider("High Threshold", 1, 255, 200, 1)),
    Preprocessor("invert", "invert (from white bg & black line)", run=_invert, resolution=HIDDEN, priority=20,
                 tags=("Canny", "Lineart", "Scribble", "MLSD")),
    Preprocessor("blur_gaussian", run=_blur_gaussian, tags=("Tile",), slider_1=Slider("Sigma", 0.01, 64.0, 9.0)),
    Preprocessor("scribble_xdog", run=_scribble_xdog, tags=("Scribble", "SparseCtrl"),
                 slider_1=Slider("XDoG Threshold", 1, 64, 32)),
    Preprocessor("threshold", run=_threshold, slider_1=Slider("Binarization Threshold", 0, 255, 127)),
    Preprocessor("lineart_standard", "lineart_standard (from white bg & black line)", run=_lineart_standard,
                 priority=100, tags=("Lineart",)),
    Preprocessor("tile_resample", run=_tile_resample, priority=100, tags=("Tile",),
                 slider_1=Slider("Down Sampling Rate", 1.0, 8.0, 1.0, 0.01)),
    _model("depth", "depth_midas", "dpt_hybrid-midas-501f0c75.pt", "midas", 100, ("Depth",)),
    _model("depth_leres", None, "res101.pth", "leres", 0, ("Depth",),
           slider_1=Slider("Remove Near %", 0, 100, 0, 0.1), slider_2=Slider("Remove Background %", 0, 100, 0, 0.1)),
    _model("depth_zoe", None, "ZoeD_M12_N.pt", "zoedepth", 0, ("Depth",)),
    _model("openpose", None, "body_pose_model.pth", "openpose", 0, ("OpenPose",)),
    _model("openpose_full", None, "body_pose_model.pth", "openpose", 100, ("OpenPose",)),
    _model("hed", "softedge_hed", "ControlNetHED.pth", "hed", 0, ("SoftEdge",)),
    _model("pidinet", "softedge_pidinet", "table5_pidinet.pth", "pidinet", 100, ("SoftEdge",)),
    _model("lineart", "lineart_realistic", "sk_model.pth", "lineart", 0, ("Lineart",)),
    _model("lineart_coarse", None, "sk_model2.pth", "lineart", 0, ("Lineart",)),
    _model("lineart_anime", None, "netG.pth", "lineart_anime", 0, ("Lineart",)),
    _model("mlsd", None, "mlsd_large_512_fp32.pth", "mlsd", 100, ("MLSD",),
           slider_1=Slider("MLSD Value Threshold", 0.01, 2.0, 0.1), slider_2=Slider("MLSD Distance Threshold", 0.01,
                                                                                    20.0, 0.1)),
    _model("normal_bae", None, "scannet.pt", "normal_bae", 100, ("NormalMap",)),
    _model("oneformer_ade20k", "seg_ofade20k", "250_16_swin_l_oneformer_ade20k_160k.pth", "oneformer", 100,
           ("Segmentation",)),
)

_BY_LABEL = {p.shown: p for p in PREPROCESSORS}
_BY_NAME = {p.name: p for p in PREPROCESSORS}


def find_preprocessor(module: str) -> Preprocessor | None:
    """A preprocessor by label, else by name (the extension's ``get_preprocessor``)."""
    return _BY_LABEL.get(module) or _BY_NAME.get(module)


def sorted_preprocessors() -> list[Preprocessor]:
    """``none`` first, then by priority and label, descending (``get_sorted_preprocessors``)."""
    rest = [p for p in PREPROCESSORS if p.shown != "none"]
    return [_BY_LABEL["none"]] + sorted(rest, key=lambda p: str(p.priority).zfill(8) + p.shown, reverse=True)


def module_list(alias_names: bool) -> dict:
    """``/controlnet/module_list``'s body."""
    shown = [p.shown if alias_names else p.name for p in sorted_preprocessors()]
    return {"module_list": shown,
            "module_detail": {key: find_preprocessor(key).detail() for key in shown}}


@dataclass
class AnnotatorMissing(Exception):
    """A model-based preprocessor: its annotator file is not available here."""

    preprocessor: Preprocessor
    detail: str = field(init=False)

    def __post_init__(self):
        file, folder = self.preprocessor.annotator
        self.detail = (f"preprocessor {self.preprocessor.shown} needs the annotator model {file} "
                       f"({ANNOTATOR_ROOT}/{folder}/{file}), which sdapi does not run; use a pure image "
                       "preprocessor (none, invert, canny, scribble_xdog, threshold, lineart_standard, tile_resample, "
                       "blur_gaussian) or send the control map with module none")
        super().__init__(self.detail)


def detect(preprocessor: Preprocessor, image: np.ndarray, resolution: float, a: float, b: float) -> np.ndarray:
    """Run a preprocessor on an ``H x W x 3`` uint8 image; the map as ``H' x W' x 3`` uint8.

    Raises:
        AnnotatorMissing: a model-based preprocessor.
    """
    if preprocessor.run is None:
        raise AnnotatorMissing(preprocessor)
    return hwc3(np.ascontiguousarray(preprocessor.run(image, resolution, a, b)))
