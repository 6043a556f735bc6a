"""LoRA training in Ray mode: each job a Ray task that claims one device of its own (``num_gpus=1`` on a cluster with
GPUs, the replicas' share of CPUs otherwise), beside the engine replicas, which keep serving.

The task builds a local engine and runs the same :meth:`sdapi.engine.api.Engine.train` as a single-process server.
Its reporter is a stream: every call the trainer makes (status, log line, step, epoch end, saved file, sample) is
yielded back to the ingress (a Ray streaming generator), which replays it on the job's own
:class:`sdapi.training.reporter.JobReporter`, so the job's record, loss rows, log and TensorBoard events are written
by the ingress exactly as in one process. Cancel goes the other way through the board, which the trainer's
``should_stop`` polls at each step.

Files: the trained LoRA files go to the job's output folder (the shared ``models/Lora``), which every node mounts at
the same path, so the replicas (and the ingress's LoRA list) see them at once. The job folder (samples, latent
cache) is the ingress's, in ``DATA_DIR``; a task on a node that does not mount it uses a temporary folder, and each
sample image travels back with its event.
"""

from __future__ import annotations

import logging
import pickle
import queue
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import ray
from ray import exceptions as ray_errors

from sdapi.cluster.job_flags import PolledFlags
from sdapi.engine.api import TrainingJob
from sdapi.engine.errors import EngineError, ReplicaLost
from sdapi.engine.factory import local_engine
from sdapi.engine.training.reporting import TrainResult
from sdapi.files import write_atomically
from sdapi.settings import Settings

log = logging.getLogger("sdapi")

WATCH_S = 0.05  # how often the ingress looks at the job's cancel flag
# Errors that mean the training task's worker (or its node) went away, not that the job itself failed.
LOST = (ray_errors.RayActorError, ray_errors.WorkerCrashedError, ray_errors.NodeDiedError,
        ray_errors.ObjectLostError, ray_errors.OwnerDiedError)


@dataclass(frozen=True)
class TrainPlacement:
    """Where and how a training task runs.

    Args:
        settings: the settings its local engine is built with (device, precision, threads, cache folder).
        num_gpus: GPUs it claims (1 on a cluster with GPUs).
        num_cpus: CPUs it claims (a CPU cluster: the replicas' share, also its torch threads).
    """

    settings: Settings
    num_gpus: float = 0
    num_cpus: float = 1

    def describe(self) -> str:
        return f"{self.num_gpus:g} GPU" if self.num_gpus else f"{self.num_cpus:g} CPU"


# -- the task's side -----------------------------------------------------------------------------------------------

class StreamReporter:
    """The trainer's :class:`sdapi.engine.training.reporting.Reporter` inside the task: each call becomes an event
    for the ingress; ``should_stop``/``save_on_stop`` read the job's flags on the board.

    Args:
        board: the board actor.
        job_id: the job's id on the board.
        emit: puts an event into the stream (thread-safe).
        job_dir: the folder the trainer writes samples into (read back for the ingress).
    """

    def __init__(self, board, job_id: str, emit: Callable[[tuple], None], job_dir: Path):
        self.board, self.job_id, self.emit, self.job_dir = board, job_id, emit, job_dir
        self._flags = PolledFlags(board, job_id, {"interrupted": False, "save_current": False})

    def status(self, status: str, text: str | None = None) -> None:
        self.emit(("status", status, text))

    def log(self, message: str) -> None:
        self.emit(("log", message))

    def step(self, report) -> None:
        self.emit(("step", report))

    def epoch_end(self, epoch: int, step: int, epoch_average: float) -> None:
        self.emit(("epoch_end", epoch, step, epoch_average))

    def saved(self, output: dict[str, Any]) -> None:
        self.emit(("saved", output))

    def sampled(self, sample: dict[str, Any]) -> None:
        path = self.job_dir / "sample" / sample["file"]
        self.emit(("sampled", sample, path.read_bytes() if path.is_file() else None))

    def should_stop(self) -> bool:
        return bool(self._flags.read()["interrupted"])

    def save_on_stop(self) -> bool:
        # Asked once, when stopping: the flags as they are now.
        return bool(self._flags.read(fresh=True).get("save_current"))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (the ingress re-raises it), else an EngineError that says what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure
        return EngineError(f"{type(exc).__name__}: {exc}")


def run_training(settings: Settings, job: TrainingJob, job_id: str, board) -> Iterator[tuple]:
    """The training task (a streaming generator): ``("started", node)``, the reporter's events, then
    ``("result", TrainResult)`` or ``("error", exception)``."""
    yield ("started", ray.get_runtime_context().get_node_id())
    temporary = None
    if not Path(job.job_dir).is_dir():  # a node without DATA_DIR: samples and latents in a folder of its own
        temporary = Path(tempfile.mkdtemp(prefix="sdapi-train-"))
        job = replace(job, job_dir=temporary)
    events: queue.Queue = queue.Queue()

    def work() -> None:
        try:  # torch loads in local_engine, in the task's worker
            engine = local_engine(settings)
            events.put(("result", engine.train(job, StreamReporter(board, job_id, events.put, Path(job.job_dir)))))
        except BaseException as exc:  # noqa: BLE001 - the ingress records it as the job's failure
            events.put(("error", _portable(exc)))

    threading.Thread(target=work, name=f"sdapi-train-{job_id[:8]}", daemon=True).start()
    try:
        while True:
            event = events.get()
            yield event
            if event[0] in ("result", "error"):
                return
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


# -- the ingress's side --------------------------------------------------------------------------------------------

class ClusterTrainer:
    """Runs training jobs as Ray tasks and replays their events on the ingress's reporters.

    Args:
        placement: the task's resources and engine settings.
        board: the board actor (cancel flags).
    """

    def __init__(self, placement: TrainPlacement, board):
        self.placement, self.board = placement, board
        self._task = ray.remote(run_training)  # exported once, run once per job

    def train(self, job: TrainingJob, reporter) -> TrainResult:
        """Run ``job`` on a device of its own; ``reporter`` (a JobReporter) receives its events as they happen."""
        job_id = uuid.uuid4().hex
        ray.get(self.board.open_job.remote(job_id), timeout=30)
        started = threading.Event()
        done = threading.Event()
        options = {"num_gpus": self.placement.num_gpus, "num_cpus": self.placement.num_cpus,
                   "num_returns": "streaming", "max_retries": 0, "name": f"sdapi-lora-train-{job_id[:8]}"}
        stream = self._task.options(**options).remote(self.placement.settings, job, job_id, self.board)
        reporter.log(f"waiting for a device on the Ray cluster ({self.placement.describe()})")
        watcher = threading.Thread(target=self._watch, args=(reporter, job_id, stream, started, done), daemon=True,
                                   name=f"sdapi-train-watch-{job_id[:8]}")
        watcher.start()
        try:
            for ref in stream:
                event = ray.get(ref)
                kind = event[0]
                if kind == "started":
                    started.set()
                    reporter.log(f"running on Ray node {str(event[1])[:12]}")
                elif kind == "result":
                    return event[1]
                elif kind == "error":
                    raise event[1]
                else:
                    _replay(event, reporter, Path(job.job_dir))
            raise ReplicaLost("the training task ended without a result")
        except ray_errors.TaskCancelledError:
            return TrainResult("cancelled", 0)  # cancelled while it waited for a device
        except LOST as exc:
            raise ReplicaLost(f"the Ray worker running this training job died: {type(exc).__name__}") from exc
        finally:
            done.set()
            self.board.close_job.remote(job_id)

    def _watch(self, reporter, job_id: str, stream, started: threading.Event, done: threading.Event) -> None:
        """Forward the job's cancel to the board (again if a later cancel changes ``save_current``); a job still
        waiting for a device is cancelled in Ray."""
        sent = None
        while not done.wait(WATCH_S):
            if not reporter.should_stop():
                continue
            save = bool(reporter.save_on_stop())
            if sent != save:
                self.board.cancel.remote(job_id, save)
                if sent is None and not started.is_set():
                    ray.cancel(stream)
                sent = save


def _replay(event: tuple, reporter, job_dir: Path) -> None:
    """Apply one task event to the job's reporter."""
    kind = event[0]
    if kind == "status":
        reporter.status(event[1], event[2])
    elif kind == "log":
        reporter.log(event[1])
    elif kind == "step":
        reporter.step(event[1])
    elif kind == "epoch_end":
        reporter.epoch_end(*event[1:])
    elif kind == "saved":
        reporter.saved(event[1])
    elif kind == "sampled":
        sample, data = event[1], event[2]
        name = Path(sample["file"]).name  # the trainer's own file name; never a path
        target = job_dir / "sample" / name
        if data is not None and not target.is_file():  # the task ran where DATA_DIR is not mounted
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, lambda out: out.write(data))
        reporter.sampled({**sample, "file": name})
