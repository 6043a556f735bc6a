"""The OpenPose 18-part body model (COCO order) and the hand's 21-point skeleton.

Parts: 0 nose, 1 neck, 2-4 right shoulder/elbow/wrist, 5-7 left shoulder/elbow/wrist, 8-10 right hip/knee/ankle,
11-13 left hip/knee/ankle, 14 right eye, 15 left eye, 16 right ear, 17 left ear (the person's own sides).
"""

from __future__ import annotations

# (part A, part B, x field channel, y field channel), in the order the extension connects them. The last two
# (shoulder to ear) only join parts of people found through the first 17, which are also the limbs drawn.
LIMBS = (
    (1, 2, 12, 13), (1, 5, 20, 21), (2, 3, 14, 15), (3, 4, 16, 17), (5, 6, 22, 23), (6, 7, 24, 25),
    (1, 8, 0, 1), (8, 9, 2, 3), (9, 10, 4, 5), (1, 11, 6, 7), (11, 12, 8, 9), (12, 13, 10, 11),
    (1, 0, 28, 29), (0, 14, 30, 31), (14, 16, 34, 35), (0, 15, 32, 33), (15, 17, 36, 37),
    (2, 16, 18, 19), (5, 17, 26, 27),
)
DRAWN_LIMBS = 17

# Per part (and per drawn limb, in LIMBS order): the rainbow the extension draws with, RGB.
PART_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# Hand bones: the wrist (0) to each finger's four joints, thumb first.
HAND_EDGES = tuple((0 if j == 0 else 4 * f + j, 4 * f + j + 1) for f in range(5) for j in range(4))
