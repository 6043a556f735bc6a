"""The whole annotator: body, then per person the hands and face asked for, drawn and as pose JSON."""

from __future__ import annotations

import numpy as np

from sdapi.engine.annotators.openpose.association import assemble_people, connect_limbs
from sdapi.engine.annotators.openpose.body import body_maps, find_peaks
from sdapi.engine.annotators.openpose.drawing import draw_poses
from sdapi.engine.annotators.openpose.face import face_box, face_points
from sdapi.engine.annotators.openpose.hands import find_hand, hand_boxes
from sdapi.engine.annotators.openpose.loading import FILE_NAMES, OpenposeNets
from sdapi.engine.annotators.openpose.pose import Pose, relative_body, relative_points
from sdapi.engine.annotators.openpose.pose_json import pose_json


def _require(nets: OpenposeNets, part: str) -> None:
    if getattr(nets, part) is None:
        raise ValueError(f"the OpenPose {part} network is not loaded ({FILE_NAMES[part]})")


def detect_poses(nets: OpenposeNets, bgr: np.ndarray, hands: bool, face: bool) -> list[Pose]:
    """Everyone found in a BGR uint8 image (the networks' channel order), points as fractions of its size."""
    height, width = bgr.shape[:2]
    heatmaps, fields = body_maps(nets.body, bgr, nets.device)
    peaks = find_peaks(heatmaps)
    all_peaks = [p for part in peaks for p in part]
    people = assemble_people(connect_limbs(peaks, fields, height), all_peaks)
    poses = []
    for person in people:
        parts = [all_peaks[i] if i >= 0 else None for i in person.parts]
        pose = Pose(relative_body(parts, height, width))
        for left, top, size, is_left in hand_boxes(parts, height, width) if hands else ():
            points = find_hand(nets.hand, bgr[top:top + size, left:left + size], nets.device)
            found = relative_points(points, left, top, height, width)
            if is_left:
                pose.left_hand = found
            else:
                pose.right_hand = found
        box = face_box(parts, height, width) if face else None
        if box is not None:
            left, top, size = box
            points = face_points(nets.face, bgr[top:top + size, left:left + size], nets.device)
            pose.face = relative_points(points, left, top, height, width) if points else None
        poses.append(pose)
    return poses


def run_openpose(nets: OpenposeNets, image: np.ndarray, include_body: bool, include_hand: bool,
                 include_face: bool) -> tuple[np.ndarray, dict]:
    """The pose map (``H x W x 3`` uint8) of an RGB uint8 image, and its pose JSON.

    ``image`` is what the extension's annotator sees: already resized and padded. The body is always detected
    (hands and face are placed from it), and is in the JSON even when ``include_body`` leaves it undrawn.

    Raises:
        ValueError: a network the request needs was not loaded, or not an ``H x W x 3`` uint8 image.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"OpenPose needs an H x W x 3 uint8 image, not {image.shape} {image.dtype}")
    _require(nets, "body")
    if include_hand:
        _require(nets, "hand")
    if include_face:
        _require(nets, "face")
    height, width = image.shape[:2]
    poses = detect_poses(nets, np.ascontiguousarray(image[:, :, ::-1]), include_hand, include_face)
    return draw_poses(poses, height, width, include_body, include_hand, include_face), pose_json(poses, height, width)
