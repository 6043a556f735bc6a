"""Training jobs on the server: validated at once, run on the one device worker, recorded in SQLite.

A job goes ``queued → preparing → running → done | failed | cancelled``. It runs through the same FIFO queue
as generation, so txt2img requests wait behind it; before it trains, the inference pipelines are freed (the next
generation loads its checkpoint again). Cancel is cooperative: the trainer stops at its next step boundary.

An engine that trains on devices of its own (Ray Serve: a task beside the replicas, ``Engine.training_slots``)
gets a training queue of its own instead, with its own job controls: generation keeps running meanwhile, and
``/progress`` keeps following the generation jobs (a job's progress is at ``/lora/train/{id}``).
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdapi.dataset.paths import PathGuard
from sdapi.errors import NotFound
from sdapi.protocol.training import TrainRequest
from sdapi.jobs import JobQueue
from sdapi.serving.base import ServerState
from sdapi.serving.control import JobControl
from sdapi.serving.controls import JobControls
from sdapi.engine.api import TrainingJob
from sdapi.engine.training.plan import TrainPlan
from sdapi.translate import job_timestamp
from sdapi.training.recovery import recover_interrupted
from sdapi.training.reporter import CancelFlag, JobReporter, log_tail
from sdapi.training.store import FINAL_STATUSES, JobStore
from sdapi.training.tb_events import EventWriter, run_dir
from sdapi.training.validate import ValidationContext, build_plan
from sdapi.training.views import job_view

log = logging.getLogger("sdapi")

TRAINING_SUBDIR = "training"
SAMPLE_SUBDIR = "sample"


class JobConflict(Exception):
    """A cancel of a job that already ended, or a job whose files another active job is about to write (409)."""

    status_code = 409


@dataclass
class LiveJob:
    """What only the process running a job knows: its queue entry, cancel flag and fresh progress.

    Args:
        queued: its entry in the job queue.
        cancel: its cancel flag.
        output: ``(output folder, output_name)``: the files it writes, which no other active job may write.
        reporter: its progress reporter, once it runs.
    """

    queued: Any
    cancel: CancelFlag
    output: tuple[str, str] = ("", "")
    reporter: JobReporter | None = None


class TrainingService:
    """Submits, runs, lists and cancels LoRA training jobs.

    Args:
        state: the server state (settings, queue, control, catalogs, engine).
    """

    def __init__(self, state: ServerState):
        self.state = state
        self.root = state.settings.data_dir / TRAINING_SUBDIR
        self.store = JobStore(self.root / "jobs.sqlite")
        self._live: dict[str, LiveJob] = {}
        self._active: set[str] = set()  # queued or running in this process
        self._lock = threading.Lock()
        slots = int(state.engine.training_slots())
        # Training beside generation (Ray): a queue and job controls of its own; else generation's queue.
        self._controls = JobControls(slots) if slots else None
        self.queue = JobQueue(on_start=self._controls.bind_job, max_pending=state.settings.queue_size,
                              workers=slots) if self._controls else state.queue
        recover_interrupted(self.store)

    @property
    def control(self) -> JobControl:
        """The job control a running training job reports to (the worker's own)."""
        return self._controls.current() if self._controls else self.state.control

    def blocks_generation(self) -> bool:
        """Whether generation waits for (or, with ``train_busy="reject"``, is refused by) a queued or running job:
        when training runs on the generation device."""
        return self._controls is None and self.busy()

    # -- helpers -------------------------------------------------------------------------------------------

    def guard(self) -> PathGuard:
        """The data dir plus any configured dataset roots; model folders read-only but for the LoRA folder."""
        return PathGuard.for_settings(self.state.settings)

    def context(self) -> ValidationContext:
        return ValidationContext(self.guard(), self.state.settings.loras_dir, self.state.catalog.find,
                                 cuda=self.state.engine.device_name() == "cuda")

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def record(self, job_id: str) -> dict[str, Any]:
        """The stored job. Raises NotFound."""
        job = self.store.get(job_id)
        if job is None:
            raise NotFound(f"Training job {job_id} not found")
        return job

    # -- submitting ----------------------------------------------------------------------------------------

    def plan(self, req: TrainRequest, job_id: str) -> TrainPlan:
        """Validate a request (raises ConfigError naming the field)."""
        return build_plan(req, self.context(), self.job_dir(job_id))

    def submit(self, req: TrainRequest) -> dict[str, Any]:
        """Validate and queue a job (or only validate, with ``dry_run``).

        Returns:
            ``{job_id, status, effective_config, dataset}`` (``status`` is ``dry_run`` for a dry run).

        Raises:
            ConfigError: a field that cannot work.
        """
        job_id = uuid.uuid4().hex
        plan = self.plan(req, job_id)
        config = {**plan.config, "output_dir": str(plan.output_dir)}
        dataset = plan.dataset_summary()
        output = (str(plan.output_dir), plan.output_name)
        if req.dry_run:
            with self._lock:
                self._refuse_taken_output(output)
            return {"job_id": None, "status": "dry_run", "effective_config": config, "dataset": dataset}
        job_dir = self.job_dir(job_id)
        cancel = CancelFlag()
        # One critical section from the check to the live entry: two requests at once cannot both pass, and the
        # entry exists before the worker can start the job.
        with self._lock:
            self._refuse_taken_output(output)
            job_dir.mkdir(parents=True, exist_ok=True)
            self.store.create(job_id, job_dir, config, dataset)
            self._active.add(job_id)
            live = self._live[job_id] = LiveJob(queued=None, cancel=cancel, output=output)
            live.queued = self.queue.submit(functools.partial(self._run, job_id, plan), "lora-train")
        log.info("LoRA training job %s queued: %s, %d steps", job_id, plan.output_name, plan.schedule.total_steps)
        return {"job_id": job_id, "status": "queued", "effective_config": config, "dataset": dataset}

    def _refuse_taken_output(self, output: tuple[str, str]) -> None:
        """Raise JobConflict when a queued or running job will write the same files (``overwrite`` or not: the
        later job would replace files the earlier one records as its own). Called with the lock held."""
        for job_id in self._active:
            live = self._live.get(job_id)
            if live is not None and live.output == output:
                status = (self.store.get(job_id) or {}).get("status", "queued")
                raise JobConflict(f"Training job {job_id} ({status}) already writes output_name {output[1]!r} into "
                                  f"this output folder; wait for it to end, cancel it, or pick another output_name")

    def busy(self) -> bool:
        """Whether a job is queued or running in this process (generation may be refused meanwhile)."""
        with self._lock:
            return bool(self._active)

    def _finished(self, job_id: str) -> None:
        with self._lock:
            self._active.discard(job_id)

    # -- reading -------------------------------------------------------------------------------------------

    def view(self, job_id: str) -> dict[str, Any]:
        """``GET /lora/train/{id}``."""
        job = self.record(job_id)
        live = self._live.get(job_id)
        progress = dict(live.reporter.progress) if live and live.reporter and job["status"] not in FINAL_STATUSES \
            else None
        return job_view(job, progress)

    def views(self) -> list[dict[str, Any]]:
        """``GET /lora/train``: every job, oldest first."""
        return [self.view(job["id"]) for job in self.store.list()]

    def losses(self, job_id: str, since_step: int = 0) -> list[dict[str, Any]]:
        self.record(job_id)
        return self.store.losses(job_id, since_step)

    def log_text(self, job_id: str) -> str:
        job = self.record(job_id)
        path = Path(job["job_dir"]) / "train.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def sample_path(self, job_id: str, file_name: str) -> Path:
        """A recorded sample image of the job (only recorded names: no path ever comes from the request)."""
        job = self.record(job_id)
        names = {s["file"] for s in job["samples"]}
        if file_name not in names:
            raise NotFound(f"Sample {file_name} not found")
        return Path(job["job_dir"]) / SAMPLE_SUBDIR / file_name

    # -- cancelling ----------------------------------------------------------------------------------------

    def cancel(self, job_id: str, save_current: bool = False) -> dict[str, Any]:
        """Stop a queued job at once, or a running one at its next step boundary.

        Raises:
            NotFound: unknown job. JobConflict: it already ended.
        """
        job = self.record(job_id)
        if job["status"] in FINAL_STATUSES:
            raise JobConflict(f"Training job {job_id} already ended ({job['status']})")
        live = self._live.get(job_id)
        if live is None:
            raise JobConflict(f"Training job {job_id} is not run by this server process")
        live.cancel.save_current = save_current
        live.cancel.requested = True
        if live.queued is not None and job["status"] == "queued":
            self.queue.cancel(live.queued)
            if live.queued.future.cancelled():
                self.store.update(job_id, status="cancelled", finished_at=time.time())
                self._finished(job_id)
        return {"job_id": job_id, "status": self.store.get(job_id)["status"], "cancel_requested": True}

    # -- running (on the worker) ---------------------------------------------------------------------------

    def _reporter(self, job_id: str, plan: TrainPlan, cancel: CancelFlag) -> JobReporter:
        events = None
        if plan.logging_dir is not None:
            events = EventWriter(run_dir(plan.logging_dir, plan.config.get("log_prefix"), time.time()))
        loras = self.state.loras
        return JobReporter(job_id, self.store, self.control, self.job_dir(job_id) / "train.log", cancel,
                           events, on_saved=loras.refresh if loras is not None else None)

    def _run(self, job_id: str, plan: TrainPlan) -> str:
        try:
            return self._run_job(job_id, plan)
        finally:
            self._finished(job_id)

    def _run_job(self, job_id: str, plan: TrainPlan) -> str:
        live = self._live[job_id]
        if live.cancel.requested:
            self.store.update(job_id, status="cancelled", finished_at=time.time())
            return "cancelled"
        control = self.control
        reporter = live.reporter = self._reporter(job_id, plan, live.cancel)
        self.store.update(job_id, status="preparing", started_at=time.time())
        control.begin(1, job_timestamp())
        control.next_batch(plan.schedule.total_steps)
        control.job = f"LoRA training {plan.output_name}"
        status, error = "failed", None
        try:
            status = self._train(plan, reporter).status
        except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the worker goes on
            reporter.log("".join(traceback.format_exception(exc)).rstrip())
            error = {"type": type(exc).__name__, "message": str(exc)}
        finally:
            reporter.close()
            control.end()
        if error is not None:
            error["log_tail"] = log_tail(reporter.log_path)
        reporter.log(f"job {status}")
        self._finished(job_id)  # before the final status: a client that sees "done" may generate at once
        self.store.update(job_id, status=status, finished_at=time.time(), error=error)
        if live.cancel.requested and status == "cancelled":
            shutil.rmtree(self.job_dir(job_id) / "latents", ignore_errors=True)
        return status

    def _train(self, plan: TrainPlan, reporter: JobReporter):
        model_hash, legacy = self.state.catalog.hashes(plan.config["pretrained_model_name_or_path"], plan.checkpoint)
        for note in plan.notes:
            reporter.log(note)
        reporter.log(f"training {plan.output_name} on {self.state.engine.device_name()}: {plan.schedule.epochs} "
                     f"epochs, {plan.schedule.total_steps} steps")
        job = TrainingJob(plan, self.job_dir(reporter.job_id), model_hash, legacy)
        return self.state.engine.train(job, reporter)

    def shutdown(self) -> None:
        """Server shutdown: ask every job of this process to stop at its next step (queued ones never start and
        are marked failed by the next start)."""
        with self._lock:
            live = [self._live[job_id] for job_id in self._active if job_id in self._live]
        for job in live:
            job.cancel.requested = True
        if self.queue is not self.state.queue:
            self.queue.stop(None)  # queued jobs fail (marked failed by the next start); the running one stops
