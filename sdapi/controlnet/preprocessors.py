"""The extension's preprocessors (``scripts/preprocessor/*``, ``supported_preprocessor.py``) as one data table.

Each row gives what ``/controlnet/module_list`` shows and how a unit's numbers are checked: its name (what units
and ``module_list`` use), its label (``alias_names``), its sliders (range and default of ``processor_res``,
``threshold_a``, ``threshold_b``), its sorting priority and tags. The pure image operations run here; a model-based
one names its network, its annotator files and what happens around the network (the engine runs the network on
the padded image; a missing file is refused with where it goes).

A quirk kept from the extension: its legacy preprocessors store their resolution range where the list does not
read it, so every preprocessor but ``invert`` shows (and bounds) the default Resolution slider, 64 to 2048.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from sdapi.controlnet.image_ops import edge_nms, hwc3, resize_with_pad

# (image H x W x 3 uint8, resolution, slider 1, slider 2) -> map
Detector = Callable[[np.ndarray, float, float, float], np.ndarray]
# The extension's annotator folder under A1111's root (its --controlnet-annotator-models-path replaces it).
ANNOTATOR_ROOT = "extensions/sd-webui-controlnet/annotator/downloads"


@dataclass(frozen=True)
class AnnotatorFile:
    """One file a network reads: its role for the engine, and where the extension keeps it (``folder/file`` under
    the annotator folder)."""

    role: str
    folder: str
    file: str

    @property
    def relative(self) -> str:
        return f"{self.folder}/{self.file}"


@dataclass(frozen=True)
class Network:
    """What a model-based preprocessor runs.

    Args:
        name: the engine's network (``sdapi.engine.annotators.registry``).
        files: the annotator files it reads.
        options: the network's switches from the unit's two sliders.
        finish: work on the network's map after the padding is cut off (inversion, thinning...).
        poses: it reports poses (the ``poses`` of ``/controlnet/detect``).
    """

    name: str
    files: tuple[AnnotatorFile, ...]
    options: Callable[[float, float], dict] = lambda a, b: {}
    finish: Callable[[np.ndarray], np.ndarray] | None = None
    poses: bool = False


# (network, padded H x W x 3 uint8 image, options) -> (map, pose JSON or None); the serving layer's bridge to the
# engine, which also finds the files.
Annotate = Callable[[Network, np.ndarray, dict], tuple[np.ndarray, dict | None]]


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
        network: a model-based preprocessor's network.
        slider_1, slider_2: ``threshold_a`` and ``threshold_b``.
        resolution: ``processor_res``.
        priority: the extension's ``sorting_priority`` (higher first).
        model_free: ``do_not_need_model`` (reference and revision preprocessors).
    """

    name: str
    label: str | None = None
    run: Detector | None = None
    network: Network | None = None
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


def _color_grid(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
    """The T2I-Adapter colour grid: the short side at ``res`` (area), cells of 64 pixels averaged (cubic), blown
    back up (nearest)."""
    image = hwc3(image)
    h, w = image.shape[:2]
    if h < w:
        h, w = int(res), int(round(w / h * res))
    else:
        h, w = int(round(h / w * res)), int(res)
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    cells = cv2.resize(resized, (w // 64, h // 64), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(cells, (w, h), interpolation=cv2.INTER_NEAREST)


def _recolor(conversion: int, channel: int) -> Detector:
    # The extension converts its RGB input with OpenCV's BGR conversions; the channel weights follow that.
    def run(image: np.ndarray, res: float, a: float, b: float) -> np.ndarray:
        grey = cv2.cvtColor(hwc3(image), conversion)[:, :, channel].astype(np.float32) / 255.0
        return cv2.cvtColor(((grey ** a) * 255.0).clip(0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return run


def _model(name: str, label: str | None, network: Network, priority: int = 0, tags: tuple[str, ...] = (),
           **sliders) -> Preprocessor:
    return Preprocessor(name, label, network=network, priority=priority, tags=tags, **sliders)


def _inverted(detected: np.ndarray) -> np.ndarray:
    # The line-art networks draw dark lines on white; ControlNet wants white lines on black.
    return 255 - detected


def _scribble_from_edges(edges: np.ndarray) -> np.ndarray:
    """Soft edges thinned to strokes (the extension's ``scribble_hed`` and ``scribble_pidinet``): non-maximum
    suppression along four directions at 127, a blur, and every pixel above 4 set."""
    kept = edge_nms(cv2.GaussianBlur(edges.astype(np.float32), (0, 0), 3.0))
    strokes = np.zeros_like(kept, dtype=np.uint8)
    strokes[kept > 127] = 255
    strokes = cv2.GaussianBlur(strokes, (0, 0), 3.0)
    strokes[strokes > 4] = 255
    strokes[strokes < 255] = 0
    return strokes


_HED = (AnnotatorFile("model", "hed", "ControlNetHED.pth"),)
_PIDINET = (AnnotatorFile("model", "pidinet", "table5_pidinet.pth"),)
_MIDAS = (AnnotatorFile("model", "midas", "dpt_hybrid-midas-501f0c75.pt"),)
_BODY = AnnotatorFile("body", "openpose", "body_pose_model.pth")
_HAND = AnnotatorFile("hand", "openpose", "hand_pose_model.pth")
_FACE = AnnotatorFile("face", "openpose", "facenet.pth")


def _openpose(body: bool, hand: bool, face: bool) -> Network:
    # Faces and hands are found from the body's keypoints, so every variant reads the body model.
    files = (_BODY,) + ((_HAND,) if hand else ()) + ((_FACE,) if face else ())
    return Network("openpose", files, lambda a, b: {"body": body, "hand": hand, "face": face}, poses=True)


def _lineart(file: str) -> Network:
    return Network("lineart", (AnnotatorFile("model", "lineart", file),), finish=_inverted)


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
    Preprocessor("color", "t2ia_color_grid", run=_color_grid, tags=("T2I-Adapter",)),
    Preprocessor("recolor_luminance", run=_recolor(cv2.COLOR_BGR2LAB, 0), priority=100, tags=("Recolor",),
                 slider_1=Slider("Gamma Correction", 0.1, 2.0, 1.0, 0.001)),
    Preprocessor("recolor_intensity", run=_recolor(cv2.COLOR_BGR2HSV, 2), tags=("Recolor",),
                 slider_1=Slider("Gamma Correction", 0.1, 2.0, 1.0, 0.001)),
    _model("depth", "depth_midas", Network("midas", _MIDAS, lambda a, b: {"output": "depth"}), 100, ("Depth",)),
    _model("normal_map", "normal_midas", Network("midas", _MIDAS, lambda a, b: {"output": "normal",
                                                                                "bg_threshold": a}),
           0, ("NormalMap",), slider_1=Slider("Normal Background Threshold", 0.0, 1.0, 0.4, 0.01)),
    _model("depth_leres", None, Network("leres", (AnnotatorFile("model", "leres", "res101.pth"),),
                                        lambda a, b: {"remove_near": a, "remove_background": b}), 0, ("Depth",),
           slider_1=Slider("Remove Near %", 0, 100, 0, 0.1), slider_2=Slider("Remove Background %", 0, 100, 0, 0.1)),
    _model("depth_zoe", None, Network("zoe", (AnnotatorFile("model", "zoedepth", "ZoeD_M12_N.pt"),)), 0, ("Depth",)),
    _model("openpose", None, _openpose(True, False, False), 0, ("OpenPose",)),
    _model("openpose_hand", None, _openpose(True, True, False), 0, ("OpenPose",)),
    _model("openpose_face", None, _openpose(True, False, True), 0, ("OpenPose",)),
    _model("openpose_faceonly", None, _openpose(False, False, True), 0, ("OpenPose",)),
    _model("openpose_full", None, _openpose(True, True, True), 100, ("OpenPose",)),
    _model("hed", "softedge_hed", Network("hed", _HED), 0, ("SoftEdge",)),
    _model("hed_safe", "softedge_hedsafe", Network("hed", _HED, lambda a, b: {"safe": True}), 0, ("SoftEdge",)),
    _model("scribble_hed", None, Network("hed", _HED, finish=_scribble_from_edges), 0, ("Scribble", "SparseCtrl")),
    _model("pidinet", "softedge_pidinet", Network("pidinet", _PIDINET), 100, ("SoftEdge",)),
    _model("pidinet_safe", "softedge_pidisafe", Network("pidinet", _PIDINET, lambda a, b: {"safe": True}), 0,
           ("SoftEdge",)),
    _model("pidinet_scribble", "scribble_pidinet", Network("pidinet", _PIDINET, finish=_scribble_from_edges), 100,
           ("Scribble", "SparseCtrl")),
    _model("pidinet_sketch", "t2ia_sketch_pidi", Network("pidinet", _PIDINET, lambda a, b: {"binary": True}), 0,
           ("T2I-Adapter",)),
    _model("lineart", "lineart_realistic", _lineart("sk_model.pth"), 0, ("Lineart",)),
    _model("lineart_coarse", None, _lineart("sk_model2.pth"), 0, ("Lineart",)),
    _model("lineart_anime", None, Network("lineart_anime", (AnnotatorFile("model", "lineart_anime", "netG.pth"),),
                                          finish=_inverted), 0, ("Lineart",)),
    _model("mlsd", None, Network("mlsd", (AnnotatorFile("model", "mlsd", "mlsd_large_512_fp32.pth"),),
                                 lambda a, b: {"value_threshold": a, "distance_threshold": b}), 100, ("MLSD",),
           slider_1=Slider("MLSD Value Threshold", 0.01, 2.0, 0.1), slider_2=Slider("MLSD Distance Threshold", 0.01,
                                                                                    20.0, 0.1)),
    _model("normal_bae", None, Network("normal_bae", (AnnotatorFile("model", "normal_bae", "scannet.pt"),)), 100,
           ("NormalMap",)),
    _model("segmentation", "seg_ufade20k",
           Network("uniformer", (AnnotatorFile("model", "uniformer", "upernet_global_small.pth"),)), 0,
           ("Segmentation",)),
    _model("oneformer_ade20k", "seg_ofade20k",
           Network("oneformer", (AnnotatorFile("model", "oneformer", "250_16_swin_l_oneformer_ade20k_160k.pth"),)),
           100, ("Segmentation",)),
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


class MissingAnnotatorFiles(Exception):
    """Raised by an :data:`Annotate` bridge: these files of the network are not in the annotator folder."""

    def __init__(self, missing: list[AnnotatorFile]):
        self.missing = missing
        super().__init__(", ".join(f.relative for f in missing))


# Networks this server runs (``sdapi.engine.annotators.registry``); the others are listed, and refused with a 422.
RUNNABLE_NETWORKS = frozenset({"hed", "leres", "lineart", "lineart_anime", "midas", "mlsd", "normal_bae", "openpose",
                               "pidinet", "uniformer"})


class AnnotatorMissing(Exception):
    """A model-based preprocessor that cannot run here: its annotator files are missing, or its network is not
    one this server runs. ``detail`` says which file goes where (relative to the annotator folder)."""

    def __init__(self, preprocessor: Preprocessor, missing: list[AnnotatorFile] | None = None):
        self.preprocessor = preprocessor
        network = preprocessor.network
        if network.name not in RUNNABLE_NETWORKS:
            files = ", ".join(f.file for f in network.files)
            self.detail = (f"preprocessor {preprocessor.shown} ({files}) is not run by sdapi yet; use one of "
                           f"{', '.join(runnable_preprocessors())}, or send the control map with module none")
        else:
            wanted = ", ".join(f"{f.file} in {f.folder}/" for f in (missing or network.files))
            self.detail = (f"preprocessor {preprocessor.shown} needs the annotator model {wanted} of the annotator "
                           f"folder (default {ANNOTATOR_ROOT}, or --controlnet-annotator-models-path); "
                           "sdapi never downloads it")
        super().__init__(self.detail)


def runnable_preprocessors() -> list[str]:
    """The labels of every preprocessor this server can run (given its files)."""
    return [p.shown for p in PREPROCESSORS if p.network is None or p.network.name in RUNNABLE_NETWORKS]


def detect(preprocessor: Preprocessor, image: np.ndarray, resolution: float, a: float, b: float,
           annotate: Annotate | None = None, on_pose: Callable[[dict], None] | None = None) -> np.ndarray:
    """Run a preprocessor on an ``H x W x 3`` uint8 image; the map as ``H' x W' x 3`` uint8.

    Args:
        annotate: runs a model-based preprocessor's network (``None``: model-based ones are refused).
        on_pose: receives the pose JSON of an OpenPose preprocessor (the extension's ``json_pose_callback``).

    Raises:
        AnnotatorMissing: a model-based preprocessor without ``annotate``, its files, or a network here.
        UnsupportedRequest: (from the engine) an annotator file that is not the network it should hold.
    """
    network = preprocessor.network
    if network is None:
        return hwc3(np.ascontiguousarray(preprocessor.run(image, resolution, a, b)))
    if annotate is None or network.name not in RUNNABLE_NETWORKS:
        raise AnnotatorMissing(preprocessor)
    padded, remove_pad = resize_with_pad(image, resolution)
    try:
        detected, poses = annotate(network, padded, network.options(a, b))
    except MissingAnnotatorFiles as exc:
        raise AnnotatorMissing(preprocessor, exc.missing) from exc
    detected = remove_pad(detected)
    if network.finish is not None:
        detected = network.finish(detected)
    if network.poses and on_pose is not None and poses is not None:
        on_pose(poses)
    return hwc3(np.ascontiguousarray(detected))
