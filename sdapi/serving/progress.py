"""``/progress``, ``/interrupt``, ``/skip``: answered at once, whatever the worker is doing.

``/progress`` is A1111's formula over a snapshot of the job control.

With several jobs running at once (Ray Serve replicas), a caller names its job by task id (``id_task``: the
request's ``force_task_id``, or the Agent Scheduler task's id): ``/progress`` reports that job while it runs (else
the oldest running job, as without an id), and ``/interrupt`` and ``/skip`` act on that job alone (on none when it
is not running). Without an id they act on every running job: A1111 has one job to stop.
"""

from __future__ import annotations

import time
from typing import Any

from sdapi.images import encode_image
from sdapi.serving.base import ServerState

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


def progress(state: ServerState, skip_current_image: bool = False, id_task: str | None = None) -> dict[str, Any]:
    """The ``/progress`` body, with a live preview rendered when one is due (A1111's ``set_current_image``).

    Args:
        id_task: report this task while it runs (sdapi extension); otherwise the oldest running job.
    """
    control = state.task_ids.control(id_task) or state.control
    snapshot = control.snapshot()
    image = None
    if not skip_current_image and snapshot["job_count"] > 0 and state.options.get("live_previews_enable"):
        image = _preview(state, control)
    return progress_body(snapshot, time.time(), image)


def interrupt(state: ServerState, id_task: str | None = None) -> None:
    """Stop the running job (every running job, with several workers; only task ``id_task`` when given) at its next
    step; it still returns what it finished."""
    if id_task is None:
        state.controls.interrupt()
    elif (control := state.task_ids.control(id_task)) is not None:
        control.interrupt()


def skip(state: ServerState, id_task: str | None = None) -> None:
    """Skip the current batch of the running job (of every running job, with several workers; only of task
    ``id_task`` when given)."""
    if id_task is None:
        state.controls.skip()
    elif (control := state.task_ids.control(id_task)) is not None:
        control.skip()


def internal_progress(state: ServerState, id_task: str | None, id_live_preview: int = -1,
                      live_preview: bool = True) -> dict[str, Any]:
    """A1111's ``POST /internal/progress`` body for one task id: queued (with its place), running (progress, ETA,
    a live preview newer than ``id_live_preview``) or finished."""
    status = state.task_ids.status(id_task)
    body: dict[str, Any] = {"active": status.active, "queued": status.queued, "completed": status.completed,
                            "progress": None, "eta": None, "live_preview": None, "id_live_preview": None,
                            "textinfo": None}
    if not status.active:
        body["id_live_preview"] = -1
        body["textinfo"] = f"In queue: {status.position}/{status.pending}" if status.queued else "Waiting..."
        return body
    control = state.task_ids.control(id_task) or state.control
    snapshot = control.snapshot()
    done = fraction_done(snapshot) - 0.01 if snapshot["job_count"] > 0 else 0.0  # A1111 adds no 0.01 here
    elapsed = time.time() - snapshot["time_start"]
    body.update(progress=min(max(done, 0.0), 1.0), textinfo=snapshot["textinfo"], id_live_preview=id_live_preview,
                eta=elapsed / done - elapsed if done > 0 else None)
    if live_preview and state.options.get("live_previews_enable"):
        preview_id = snapshot["job_no"] * 100000 + snapshot["sampling_step"]
        if preview_id != id_live_preview:
            image = _preview(state, control, "png")  # v1.2.1's progress page always sends PNG
            if image is not None:
                body["live_preview"] = f"data:image/png;base64,{image}"
                body["id_live_preview"] = preview_id
    return body


def _preview(state: ServerState, control, fmt: str | None = None) -> str | None:
    """A running job's live preview (``control``'s), encoded in ``fmt`` (default ``samples_format``), rendered when
    due."""
    fmt, quality = fmt or state.options.get("samples_format"), state.options.get("jpeg_quality")

    def render(preview) -> str | None:
        picture = preview.image()
        return None if picture is None else encode_image(picture, fmt, quality, pnginfo=False)

    return control.current_preview(int(state.options.get("show_progress_every_n_steps")), render)


def pending_tasks(state: ServerState) -> dict[str, Any]:
    """``GET /internal/pending-tasks``: the queued requests' task ids, oldest first."""
    tasks = state.task_ids.pending()
    return {"size": len(tasks), "tasks": tasks}
