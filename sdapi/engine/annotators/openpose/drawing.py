"""Drawing poses the way the extension does: coloured limb ellipses and joints, rainbow hand bones with red
joints, white face dots, all on a black canvas.

Colours are given in the order the canvas is handed on (RGB). Points are fractions of the canvas size, multiplied
back and truncated to pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sdapi.engine.annotators.openpose.pose import Point, Pose
from sdapi.engine.annotators.openpose.skeleton import DRAWN_LIMBS, HAND_EDGES, LIMBS, PART_COLOURS

LIMB_HALF_WIDTH = 4
# Limbs are the part colours at 60 %.
LIMB_SHADE = 0.6
JOINT_RADIUS = 4
HAND_BONE_THICKNESS = 2
HAND_JOINT_RADIUS = 4
HAND_JOINT_COLOUR = (0, 0, 255)
FACE_DOT_RADIUS = 3
FACE_DOT_COLOUR = (255, 255, 255)
# Hand and face points whose pixel x or y is not above this are not drawn: the "not found" marks (-1 / size),
# and with them any point on the top row or left column.
EDGE_MARGIN = 0.01


def _scale(points: list[Point | None], canvas: np.ndarray) -> tuple[int, int]:
    """The canvas ``(height, width)`` to multiply points by; ``(1, 1)`` when some point lies outside [-1, 1], as
    the extension then takes the points for pixels."""
    inside = [0 <= abs(p[0]) <= 1 and 0 <= abs(p[1]) <= 1 for p in points if p is not None]
    if not inside or not all(inside):
        return 1, 1
    return canvas.shape[0], canvas.shape[1]


def hue_colour(hue: float) -> tuple[float, float, float]:
    """A fully saturated, full value colour as 0-255 floats, computed as matplotlib's ``hsv_to_rgb`` does (so the
    floats OpenCV rounds are the same)."""
    sector = int(hue * 6.0)
    f = hue * 6.0 - sector
    rising, falling = 1.0 * (1.0 - 1.0 * (1.0 - f)), 1.0 * (1.0 - 1.0 * f)
    rgb = [(1.0, rising, 0.0), (falling, 1.0, 0.0), (0.0, 1.0, rising), (0.0, falling, 1.0), (rising, 0.0, 1.0),
           (1.0, 0.0, falling)][sector % 6]
    return tuple(float(c * 255) for c in rgb)


def draw_body(canvas: np.ndarray, body: list[Point | None]) -> None:
    """Limbs as filled ellipses, then a dot per part."""
    height, width = _scale(body, canvas)
    for (part_a, part_b, _, _), colour in zip(LIMBS[:DRAWN_LIMBS], PART_COLOURS):
        a, b = body[part_a], body[part_b]
        if a is None or b is None:
            continue
        xs = np.array([a[0], b[0]]) * float(width)
        ys = np.array([a[1], b[1]]) * float(height)
        length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        polygon = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), LIMB_HALF_WIDTH),
                                   int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * LIMB_SHADE) for c in colour])
    for point, colour in zip(body, PART_COLOURS):
        if point is not None:
            cv2.circle(canvas, (int(point[0] * width), int(point[1] * height)), JOINT_RADIUS, colour, thickness=-1)


def draw_hand(canvas: np.ndarray, hand: list[Point] | None) -> None:
    """Bones coloured round the hue circle, then red joints; points at the top or left edge are skipped."""
    if not hand:
        return
    height, width = _scale(hand, canvas)
    pixels = [(int(p[0] * width), int(p[1] * height)) for p in hand]
    for i, (a, b) in enumerate(HAND_EDGES):
        (x1, y1), (x2, y2) = pixels[a], pixels[b]
        if min(x1, y1, x2, y2) > EDGE_MARGIN:
            cv2.line(canvas, (x1, y1), (x2, y2), hue_colour(i / float(len(HAND_EDGES))),
                     thickness=HAND_BONE_THICKNESS)
    for x, y in pixels:
        if x > EDGE_MARGIN and y > EDGE_MARGIN:
            cv2.circle(canvas, (x, y), HAND_JOINT_RADIUS, HAND_JOINT_COLOUR, thickness=-1)


def draw_face(canvas: np.ndarray, face: list[Point] | None) -> None:
    """A white dot per face point; points at the top or left edge are skipped."""
    if not face:
        return
    height, width = _scale(face, canvas)
    for point in face:
        x, y = int(point[0] * width), int(point[1] * height)
        if x > EDGE_MARGIN and y > EDGE_MARGIN:
            cv2.circle(canvas, (x, y), FACE_DOT_RADIUS, FACE_DOT_COLOUR, thickness=-1)


def draw_poses(poses: list[Pose], height: int, width: int, body: bool, hands: bool, face: bool) -> np.ndarray:
    """A black ``height x width x 3`` uint8 canvas with each pose's chosen parts, person by person."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for pose in poses:
        if body:
            draw_body(canvas, pose.body)
        if hands:
            draw_hand(canvas, pose.left_hand)
            draw_hand(canvas, pose.right_hand)
        if face:
            draw_face(canvas, pose.face)
    return canvas
