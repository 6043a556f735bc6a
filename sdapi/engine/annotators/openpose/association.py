"""Body estimation, second half: joining part peaks into limbs along the part affinity fields, and limbs into people.

The arithmetic follows the extension step by step (sampling points, the order sums are taken in, stable sorting),
so that ties and thresholds fall the same way and scores are the same floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sdapi.engine.annotators.openpose.body import BODY_PARTS, Peak
from sdapi.engine.annotators.openpose.skeleton import LIMBS

# Points sampled along a candidate limb, and how many of them must point along it.
SAMPLES = 10
FIELD_THRESHOLD = 0.05
MIN_ALIGNED = 0.8 * SAMPLES
# Limbs from this index on (shoulder to ear) never start a new person.
STARTING_LIMBS = 17
# A person needs this many parts and this mean score per part.
MIN_PARTS = 4
MIN_MEAN_SCORE = 0.4


@dataclass(frozen=True)
class Connection:
    """A chosen limb: the two peaks' global indices and the limb's field score."""

    index_a: int
    index_b: int
    score: float


@dataclass(eq=False)
class Person:
    """One body: per part the global peak index (-1: not found), the summed score, and the number of parts."""

    parts: list[int] = field(default_factory=lambda: [-1] * BODY_PARTS)
    score: float = 0.0
    count: int = 0


def _limb_scores(peaks_a: list[Peak], peaks_b: list[Peak], field_x: np.ndarray, field_y: np.ndarray,
                 image_height: int) -> tuple[np.ndarray, np.ndarray]:
    """For every (a, b) pair, row-major by a: the mean field component along a->b with a penalty for limbs longer
    than half the image height, and whether enough sampled points point along it."""
    ax, ay = np.repeat([p.x for p in peaks_a], len(peaks_b)), np.repeat([p.y for p in peaks_a], len(peaks_b))
    bx, by = np.tile([p.x for p in peaks_b], len(peaks_a)), np.tile([p.y for p in peaks_b], len(peaks_a))
    dx, dy = bx - ax, by - ay
    norm = np.maximum(np.sqrt((dx * dx + dy * dy).astype(np.float64)), 0.001)
    ux, uy = dx / norm, dy / norm
    # np.linspace's own formula per pair (start + i * step, the end point exact), so the points round alike.
    steps = np.arange(SAMPLES, dtype=np.float64)
    xs = steps * (dx / (SAMPLES - 1))[:, None] + ax[:, None].astype(np.float64)
    ys = steps * (dy / (SAMPLES - 1))[:, None] + ay[:, None].astype(np.float64)
    xs[:, -1], ys[:, -1] = bx, by
    cols, rows = np.rint(xs).astype(np.intp), np.rint(ys).astype(np.intp)
    along = field_x[rows, cols] * ux[:, None] + field_y[rows, cols] * uy[:, None]
    # Summed left to right, as Python's sum() does (np.sum pairs terms up and can differ in the last bit).
    total = np.zeros(len(along))
    for i in range(SAMPLES):
        total = total + along[:, i]
    scores = total / SAMPLES + np.minimum(0.5 * image_height / norm - 1, 0)
    aligned = np.count_nonzero(along > FIELD_THRESHOLD, axis=1) > MIN_ALIGNED
    return scores, aligned


def connect_limbs(peaks: list[list[Peak]], fields: np.ndarray, image_height: int) -> list[list[Connection]]:
    """Per limb (``LIMBS`` order), the chosen connections: best score first, each peak used at most once."""
    limbs: list[list[Connection]] = []
    for part_a, part_b, channel_x, channel_y in LIMBS:
        peaks_a, peaks_b = peaks[part_a], peaks[part_b]
        chosen: list[Connection] = []
        limbs.append(chosen)
        if not peaks_a or not peaks_b:
            continue
        scores, aligned = _limb_scores(peaks_a, peaks_b, fields[:, :, channel_x], fields[:, :, channel_y],
                                       image_height)
        candidates = np.flatnonzero(aligned & (scores > 0))
        # Stable, so equal scores keep the row-major pair order, as Python's sorted(reverse=True) does.
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
        used_a: set[int] = set()
        used_b: set[int] = set()
        for pair in candidates:
            i, j = divmod(int(pair), len(peaks_b))
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            chosen.append(Connection(peaks_a[i].index, peaks_b[j].index, float(scores[pair])))
            if len(chosen) >= min(len(peaks_a), len(peaks_b)):
                break
    return limbs


def assemble_people(limbs: list[list[Connection]], all_peaks: list[Peak]) -> list[Person]:
    """Grow people limb by limb: a connection extends the person holding one of its ends, merges two people that
    share no part, or starts a new person; then drop people with too few parts or too low a mean score."""
    people: list[Person] = []
    for limb_index, ((part_a, part_b, _, _), connections) in enumerate(zip(LIMBS, limbs)):
        for conn in connections:
            holders = [p for p in people if p.parts[part_a] == conn.index_a or p.parts[part_b] == conn.index_b]
            # The extension keeps two holders in a two-slot list and fails on a third; the first two are used.
            if len(holders) == 1:
                person = holders[0]
                if person.parts[part_b] != conn.index_b:
                    person.parts[part_b] = conn.index_b
                    person.count += 1
                    person.score += all_peaks[conn.index_b].score + conn.score
            elif len(holders) >= 2:
                first, second = holders[:2]
                if all(a < 0 or b < 0 for a, b in zip(first.parts, second.parts)):
                    first.parts = [a if b < 0 else b for a, b in zip(first.parts, second.parts)]
                    first.score += second.score
                    first.count += second.count
                    first.score += conn.score
                    people = [p for p in people if p is not second]
                else:
                    first.parts[part_b] = conn.index_b
                    first.count += 1
                    first.score += all_peaks[conn.index_b].score + conn.score
            elif limb_index < STARTING_LIMBS:
                person = Person(count=2)
                person.parts[part_a], person.parts[part_b] = conn.index_a, conn.index_b
                person.score = all_peaks[conn.index_a].score + all_peaks[conn.index_b].score + conn.score
                people.append(person)
    return [p for p in people if p.count >= MIN_PARTS and p.score / p.count >= MIN_MEAN_SCORE]
