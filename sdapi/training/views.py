"""A job record as the HTTP API shows it (``GET /lora/train/{id}``), and lora-scripts' task statuses."""

from __future__ import annotations

from typing import Any

from sdapi.training.store import FINAL_STATUSES

# our status → lora-scripts' task status (failed is FINISHED there: lora-scripts never says "failed").
SHIM_STATUS = {"queued": "CREATED", "preparing": "CREATED", "running": "RUNNING", "done": "FINISHED",
               "failed": "FINISHED", "cancelled": "TERMINATED"}
PROGRESS_KEYS = ("step", "total_steps", "epoch", "total_epochs", "fraction", "it_per_s", "eta_s")


def job_phase(job: dict[str, Any], progress: dict[str, Any]) -> str:
    """What the job is doing: its final status once it ended (the trainer's last phase is stale then), else the
    trainer's phase (``preparing``, ``running``, ``saving``, ``sampling``), else its status (``queued``)."""
    if job["status"] in FINAL_STATUSES:
        return job["status"]
    return progress.get("phase") or job["status"]


def job_view(job: dict[str, Any], progress: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job as ``GET /lora/train/{id}`` answers.

    Args:
        job: the stored record.
        progress: the live progress of a running job (fresher than the stored one).
    """
    progress = progress if progress is not None else job["progress"]
    dataset = job["dataset"]
    filled = {key: progress.get(key) for key in PROGRESS_KEYS}
    filled["total_steps"] = filled["total_steps"] or dataset.get("total_steps")
    filled["total_epochs"] = filled["total_epochs"] or dataset.get("epochs")
    filled["step"] = filled["step"] or 0
    filled["fraction"] = filled["fraction"] or 0.0
    samples = [{**s, "url": f"/lora/train/{job['id']}/samples/{s['file']}"} for s in job["samples"]]
    return {
        "job_id": job["id"], "status": job["status"], "phase": job_phase(job, progress), "progress": filled,
        "loss": {"current": progress.get("loss"), "average": progress.get("avg_loss"),
                 "epoch_average": progress.get("epoch_average")},
        "lr": {"unet": progress.get("lr_unet"), "text_encoder": progress.get("lr_te")},
        "outputs": job["outputs"], "samples": samples, "error": job["error"],
        "created_at": job["created_at"], "started_at": job["started_at"], "finished_at": job["finished_at"],
        "effective_config": job["config"], "dataset": dataset,
    }
