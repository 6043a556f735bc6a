"""The annotator networks by name: how each is built from its files and run on a padded image.

A row's ``build`` takes the files by role (``"model"``; OpenPose's ``"body"``, ``"hand"``, ``"face"``) and the
device; its ``run`` takes the built network, the ``H x W x 3`` uint8 RGB image, the device and the job's options,
and gives the map (``H x W`` or ``H x W x 3`` uint8) with, for OpenPose, the pose JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sdapi.engine.annotators.hed import build_hed, run_hed
from sdapi.engine.annotators.lineart import build_lineart, run_lineart
from sdapi.engine.annotators.lineart_anime import build_lineart_anime, run_lineart_anime
from sdapi.engine.annotators.leres import build_leres, run_leres
from sdapi.engine.annotators.midas import build_midas, run_midas
from sdapi.engine.annotators.mlsd import build_mlsd, run_mlsd
from sdapi.engine.annotators.normal_bae import build_normal_bae, run_normal_bae
from sdapi.engine.annotators.openpose import load_openpose, run_openpose
from sdapi.engine.annotators.pidinet import build_pidinet, run_pidinet
from sdapi.engine.annotators.segmentation import build_upernet, run_segmentation
from sdapi.engine.annotators.weights import read_state_dict

Built = Any
RunResult = tuple[np.ndarray, dict | None]


@dataclass(frozen=True)
class AnnotatorNetwork:
    """One network: its builder and its runner."""

    build: Callable[[dict[str, Path], torch.device], Built]
    run: Callable[[Built, np.ndarray, torch.device, dict], RunResult]


def _single(builder: Callable[[dict], torch.nn.Module]) -> Callable[[dict[str, Path], torch.device], Built]:
    """The builder of a network read from one file (role ``model``)."""
    def build(files: dict[str, Path], device: torch.device) -> Built:
        return builder(read_state_dict(files["model"])).to(device)
    return build


def _run_hed(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_hed(net, image, device, safe=bool(options.get("safe"))), None


def _run_lineart(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_lineart(net, image, device), None


def _run_lineart_anime(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_lineart_anime(net, image, device), None


def _run_midas(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    depth, normal = run_midas(net, image, device, bg_threshold=float(options.get("bg_threshold", 0.1)))
    return (normal if options.get("output") == "normal" else depth), None


def _run_pidinet(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_pidinet(net, image, device, safe=bool(options.get("safe")), binary=bool(options.get("binary"))), None


def _run_normal_bae(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_normal_bae(net, image, device), None


def _run_leres(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_leres(net, image, device, float(options.get("remove_near", 0.0)),
                     float(options.get("remove_background", 0.0))), None


def _run_segmentation(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_segmentation(net, image, device), None


def _run_mlsd(net: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_mlsd(net, image, device, float(options.get("value_threshold", 0.1)),
                    float(options.get("distance_threshold", 0.1))), None


def _build_lineart(files: dict[str, Path], device: torch.device) -> Built:
    return build_lineart(read_state_dict(files["model"]), files["model"].name).to(device)


def _build_openpose(files: dict[str, Path], device: torch.device) -> Built:
    return load_openpose(files, device)


def _run_openpose(nets: Built, image: np.ndarray, device: torch.device, options: dict) -> RunResult:
    return run_openpose(nets, image, bool(options.get("body", True)), bool(options.get("hand")),
                        bool(options.get("face")))


NETWORKS: dict[str, AnnotatorNetwork] = {
    "hed": AnnotatorNetwork(_single(build_hed), _run_hed),
    "lineart": AnnotatorNetwork(_build_lineart, _run_lineart),
    "lineart_anime": AnnotatorNetwork(_single(build_lineart_anime), _run_lineart_anime),
    "midas": AnnotatorNetwork(_single(build_midas), _run_midas),
    "pidinet": AnnotatorNetwork(_single(build_pidinet), _run_pidinet),
    "normal_bae": AnnotatorNetwork(_single(build_normal_bae), _run_normal_bae),
    "leres": AnnotatorNetwork(_single(build_leres), _run_leres),
    "uniformer": AnnotatorNetwork(_single(build_upernet), _run_segmentation),
    "mlsd": AnnotatorNetwork(_single(build_mlsd), _run_mlsd),
    "openpose": AnnotatorNetwork(_build_openpose, _run_openpose),
}
