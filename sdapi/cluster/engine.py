"""``RayEngine``: the :class:`sdapi.engine.api.Engine` the ingress serves with in Ray mode.

Each call goes to one engine replica through a Serve handle; calls about a checkpoint carry it as the multiplexed
model id, so Serve sends them to a replica that has it loaded. Generation streams the replica's job events back into
the ingress's :class:`JobEvents` (``/progress`` moves as in one process), while a watcher thread forwards
``/interrupt`` and ``/skip`` to the board, where the replica running the job reads them.

A replica that dies mid-job fails that job with :class:`ReplicaLost` (A1111's error envelope), or retries it once
when it had not started sampling; Serve starts a new replica in its place.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import ray
from ray import exceptions as ray_errors

from sdapi.engine.api import (
    AnnotateJob,
    AnnotateResult,
    CaptionSettings,
    EmbeddingListing,
    GenerationJob,
    JobEvents,
    ModelInfo,
    ReplicaStatus,
    TrainingJob,
    UpscaleJob,
)
from sdapi.engine.errors import EngineError, ReplicaLost

log = logging.getLogger("sdapi")

WATCH_S = 0.05  # how often the watcher looks at the ingress's interrupt/skip flags
CALL_TIMEOUT_S = 600.0  # an engine call (not a generation) that takes longer than this has lost its replica
# Errors that mean the replica (or the route to it) went away, not that the job itself failed.
LOST = (ray_errors.RayActorError, ray_errors.ActorDiedError, ray_errors.ActorUnavailableError,
        ray_errors.WorkerCrashedError, ray_errors.NodeDiedError, ray_errors.ObjectLostError)


class _Preview:
    """A preview the replica already rendered."""

    def __init__(self, image):
        self._image = image

    def image(self):
        return self._image


class RayEngine:
    """An engine whose replicas are a Ray Serve deployment.

    Args:
        handle: the engine deployment's handle.
        board: the board actor.
        replicas: how many replicas the deployment has (the ingress queue gets as many workers).
        trainer: runs LoRA training jobs as Ray tasks on devices of their own
            (:class:`sdapi.cluster.training.ClusterTrainer`); ``None``: training is refused.
    """

    def __init__(self, handle, board, replicas: int, trainer=None):
        self.handle, self.board, self.replica_count = handle, board, max(1, int(replicas))
        self.trainer = trainer
        self._infos: dict[Path, ModelInfo] = {}  # a file's facts do not change: asked once, on any replica
        self._capacity: dict[int, int] = {}
        self._device: str | None = None
        self._precisions: dict[tuple[Path, int, int], str] = {}

    # -- calls -----------------------------------------------------------------------------------------------

    def _call(self, method: str, *args, model: Path | None = None) -> Any:
        handle = self.handle if model is None else self.handle.options(multiplexed_model_id=str(model))
        try:
            status, value = handle.call.remote(method, *args).result(timeout_s=CALL_TIMEOUT_S)
        except LOST as exc:
            raise ReplicaLost(f"the engine replica answering {method} died: {exc}") from exc
        if status == "error":
            raise value
        return value

    def load(self, checkpoint: Path) -> ModelInfo:
        path = Path(checkpoint)
        if path not in self._infos:
            self._infos[path] = self._call("load", path, model=path)
        return self._infos[path]

    def embeddings(self, checkpoint: Path, files: tuple[Path, ...]) -> EmbeddingListing:
        if not files:  # nothing to read: no replica needs to load the checkpoint for it
            return EmbeddingListing()
        return self._call("embeddings", Path(checkpoint), tuple(files), model=Path(checkpoint))

    def embeddings_used(self, job: GenerationJob) -> list[str]:
        if not job.embeddings:  # as the local engine answers, without loading the checkpoint somewhere
            return []
        return self._call("embeddings_used", job, model=job.checkpoint)

    def batch_capacity(self, pixels: int) -> int:
        if pixels not in self._capacity:  # every replica has the same device kind; asked once per size
            self._capacity[pixels] = self._call("batch_capacity", pixels)
        return self._capacity[pixels]

    def upscale(self, job: UpscaleJob) -> list:
        return self._call("upscale", job)

    def caption(self, images: list, model_dir: Path, settings: CaptionSettings) -> list[str]:
        return self._call("caption", images, Path(model_dir), settings)

    def annotate(self, job: AnnotateJob) -> AnnotateResult:
        return self._call("annotate", job)

    def train(self, job: TrainingJob, reporter) -> Any:
        if self.trainer is None:
            raise EngineError("LoRA training is not set up on this Ray application")
        return self.trainer.train(job, reporter)

    def training_slots(self) -> int:
        return 1 if self.trainer is not None else 0  # one job at a time, on a device of its own

    def memory(self) -> dict:
        return self._call("memory")

    def device_name(self) -> str:
        if self._device is None:
            self._device = self._call("device_name")
        return self._device

    def fast_precision(self, checkpoint: Path, width: int, height: int) -> str:
        key = (Path(checkpoint), width, height)
        if key not in self._precisions:
            self._precisions[key] = self._call("fast_precision", *key, model=key[0])
        return self._precisions[key]

    def loaded(self) -> list[Path]:
        seen: dict[str, None] = {}
        for replica in self.replicas():
            seen.update(dict.fromkeys(replica.loaded))
        return [Path(p) for p in seen]

    def set_cache_size(self, extra: int) -> None:
        log.info("sd_checkpoint_cache is fixed by --models-per-replica in Ray mode; %d ignored", extra)

    def unload_all(self) -> None:
        ray.get(self.board.unload_all.remote(), timeout=10)  # each replica frees its models before its next job

    def parallel_jobs(self) -> int:
        return self.replica_count

    def replicas(self) -> list[ReplicaStatus]:
        rows = ray.get(self.board.replicas.remote(), timeout=10)
        alive = []
        for row in rows:
            if row["actor_name"] and not _actor_alive(row["actor_name"]):
                self.board.forget.remote(row["replica_id"])
                continue
            alive.append(ReplicaStatus(row["replica_id"], row["device"], tuple(row["loaded"]),
                                       row["checkpoint_loads"], row["running"], row["jobs_done"]))
        return alive

    # -- generation ------------------------------------------------------------------------------------------

    def generate(self, job: GenerationJob, events: JobEvents | None = None) -> list:
        return self._stream("generate", (job,), job.checkpoint, events)

    def generate_batch(self, jobs: list[GenerationJob], events: JobEvents | None = None) -> list[list]:
        return self._stream("generate_batch", (jobs,), jobs[0].checkpoint, events)

    def _stream(self, method: str, args: tuple, checkpoint: Path, events: JobEvents | None) -> Any:
        """Run a generation on a replica, replaying its events; retried once if its replica died before sampling."""
        for attempt in (1, 2):
            job_id = uuid.uuid4().hex
            sampled = threading.Event()
            try:
                return self._stream_once(method, args, checkpoint, events, job_id, sampled)
            except LOST as exc:
                if sampled.is_set() or attempt == 2:
                    raise ReplicaLost(f"the engine replica running this job died: {type(exc).__name__}") from exc
                log.warning("The engine replica for job %s died before sampling; retrying it once", job_id)
        raise AssertionError("unreachable")

    def _stream_once(self, method: str, args: tuple, checkpoint: Path, events: JobEvents | None, job_id: str,
                     sampled: threading.Event) -> Any:
        ray.get(self.board.open_job.remote(job_id), timeout=30)
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(events, job_id, done), daemon=True,
                                   name=f"sdapi-watch-{job_id[:8]}")
        watcher.start()
        try:
            handle = self.handle.options(stream=True, multiplexed_model_id=str(checkpoint))
            preview = None
            for event in handle.stream.remote(method, args, job_id):
                kind = event[0]
                if kind == "result":
                    return event[1]
                if kind == "error":
                    raise event[1]
                if kind == "sampling":
                    sampled.set()
                if kind == "step" and event[2] is not None:
                    preview = _Preview(event[2])  # shown until the replica renders a newer one
                elif kind == "next_batch":
                    preview = None
                if events is not None:
                    _replay(event, events, preview)
            raise ReplicaLost("the engine replica ended the job without a result")
        finally:
            done.set()
            self.board.close_job.remote(job_id)

    def _watch(self, events: JobEvents | None, job_id: str, done: threading.Event) -> None:
        """Forward the ingress's interrupt (once) and each new skip to the board while the job runs."""
        if events is None:
            return
        interrupted = skipping = False
        while not done.wait(WATCH_S):
            if not interrupted and events.interrupted:
                interrupted = True
                self.board.interrupt.remote(job_id)
            wants_skip = not interrupted and events.should_stop()
            if wants_skip and not skipping:
                self.board.skip.remote(job_id)
            skipping = wants_skip


def _replay(event: tuple, events: JobEvents, preview: _Preview | None) -> None:
    """Apply one replica event to the ingress's job events."""
    kind = event[0]
    if kind == "step":
        events.step(event[1], preview)
    elif kind == "sampling":
        events.sampling(event[1])
    elif kind == "next_batch":
        events.next_batch()
    elif kind == "next_pass":
        events.next_pass()
    elif kind == "batch_done":
        events.batch_done()
    elif kind == "warn":
        events.warn(event[1])


def _actor_alive(name: str) -> bool:
    try:
        ray.get_actor(name, namespace="serve")
        return True
    except ValueError:
        return False
