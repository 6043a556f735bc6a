"""``/sdapi/v1/progress``: A1111's progress formula over a snapshot of the job control."""

from __future__ import annotations

from typing import Any

STATE_KEYS = ("skipped", "interrupted", "job", "job_count", "job_timestamp", "job_no", "sampling_step",
              "sampling_steps")
"""The keys of ``state``, in A1111's order."""


def fraction_done(snapshot: dict[str, Any]) -> float:
    """A1111's progress: 0.01 + finished batches + the current batch's share of its steps, at most 1."""
    job_count, steps = snapshot["job_count"], snapshot["sampling_steps"]
    progress = 0.01
    if job_count > 0:
        progress += snapshot["job_no"] / job_count
        if steps > 0:
            progress += 1 / job_count * snapshot["sampling_step"] / steps
    return min(progress, 1.0)


def progress_body(snapshot: dict[str, Any], now: float, current_image: str | None) -> dict[str, Any]:
    """The ``ProgressResponse`` body.

    Args:
        snapshot: ``JobControl.snapshot()``.
        now: ``time.time()``.
        current_image: the encoded live preview, or ``None``.
    """
    state = {key: snapshot[key] for key in STATE_KEYS}
    if snapshot["job_count"] == 0:
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None,
                "textinfo": snapshot["textinfo"]}
    progress = fraction_done(snapshot)
    elapsed = now - snapshot["time_start"]
    eta_relative = elapsed / progress - elapsed
    return {"progress": progress, "eta_relative": eta_relative, "state": state, "current_image": current_image,
            "textinfo": snapshot["textinfo"]}
