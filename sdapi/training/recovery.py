"""After a restart: jobs that were queued or running are marked failed (not resumed), consistently.

A job that was running when the process died may have left a hidden temporary file (removed here) and may have
renamed a finished file into place without recording it (recorded here, from the file's own metadata), so the
record and the folder agree. Files saved before the restart stay usable and listed.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from sdapi.files import read_safetensors_header, SHORTHASH_LENGTH
from sdapi.engine.training.file_names import output_file_pattern
from sdapi.training.reporter import log_tail
from sdapi.training.store import JobStore

log = logging.getLogger("sdapi")


def remove_partial_files(folder: Path, name: str) -> list[Path]:
    """Delete the hidden ``.{file}.{pid}.tmp`` files an interrupted save of ``name`` left in ``folder``."""
    pattern = re.compile(rf"^\.{output_file_pattern(name)}\.\d+\.tmp$")
    removed = [p for p in folder.iterdir() if pattern.match(p.name)] if folder.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def output_record(path: Path) -> dict[str, Any] | None:
    """The job-record entry of a finished file, from its own metadata (``None`` if it is not readable)."""
    try:
        meta = read_safetensors_header(path).get("__metadata__") or {}
    except (OSError, ValueError):
        return None
    model_hash = meta.get("sshs_model_hash", "")
    return {"epoch": int(meta.get("ss_epoch", 0) or 0), "step": int(meta.get("ss_steps", 0) or 0),
            "path": str(path), "name": path.stem, "sha256_addnet": model_hash,
            "shorthash": model_hash[:SHORTHASH_LENGTH], "legacy_hash": meta.get("sshs_legacy_hash", ""),
            "size": path.stat().st_size}


def adopt_unrecorded(store: JobStore, job: dict[str, Any], folder: Path, name: str) -> int:
    """Record finished files of this job that the crash left unrecorded (same session id as a recorded one,
    or any when none was recorded yet and the job started)."""
    recorded = {o["path"] for o in job["outputs"]}
    pattern = re.compile(rf"^{output_file_pattern(name)}$")
    started = job.get("started_at") or time.time()
    adopted = 0
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if pattern.match(path.name) and str(path) not in recorded and path.stat().st_mtime >= started:
            entry = output_record(path)
            if entry is not None:
                store.append(job["id"], "outputs", entry)
                adopted += 1
    return adopted


def recover_interrupted(store: JobStore) -> list[str]:
    """Mark every job left active by a previous process as failed, cleaning its output folder.

    Returns:
        The ids of the jobs marked failed.
    """
    marked = []
    for job in store.active():
        config = job["config"]
        folder, name = Path(config.get("output_dir") or ""), config.get("output_name", "")
        removed = remove_partial_files(folder, name) if name else []
        adopted = adopt_unrecorded(store, job, folder, name) if name and job["status"] != "queued" else 0
        message = (f"the server stopped while this job was {job['status']}; it was not resumed. "
                   f"Files saved before that are kept ({len(job['outputs']) + adopted} recorded).")
        tail = log_tail(Path(job["job_dir"]) / "train.log")
        store.update(job["id"], status="failed", finished_at=time.time(),
                     error={"type": "ServerRestarted", "message": message, "log_tail": tail})
        log.warning("LoRA training job %s marked failed after a restart (%d partial files removed)", job["id"],
                    len(removed))
        marked.append(job["id"])
    return marked
