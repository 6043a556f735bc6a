"""The pose JSON the extension passes to its ``json_pose_callback``: OpenPose's output format with keypoints as
fractions of the canvas, the canvas being the resized and padded image the annotator ran on."""

from __future__ import annotations

from sdapi.engine.annotators.openpose.pose import Point, Pose


def flat_keypoints(points: list[Point | None] | None) -> list[float] | None:
    """``[x, y, 1.0, ...]`` with ``0.0, 0.0, 0.0`` for a missing point; ``None`` for no (or an empty) list."""
    if not points:
        return None
    return [v for p in points for v in ((0.0, 0.0, 0.0) if p is None else (float(p[0]), float(p[1]), 1.0))]


def pose_json(poses: list[Pose], height: int, width: int) -> dict:
    """The JSON dict; ``animals`` is always empty here (the extension fills it for its animal pose model only)."""
    return {
        "people": [{"pose_keypoints_2d": flat_keypoints(p.body),
                    "face_keypoints_2d": flat_keypoints(p.face),
                    "hand_left_keypoints_2d": flat_keypoints(p.left_hand),
                    "hand_right_keypoints_2d": flat_keypoints(p.right_hand)} for p in poses],
        "animals": [],
        "canvas_height": height,
        "canvas_width": width,
    }
