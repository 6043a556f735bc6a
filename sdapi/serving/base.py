"""The serving layer's shared base: the state every endpoint works on, the job queue and per-job option copies.

Device work (generation, model switches, upscaling, training) runs on the job queue's one worker, in arrival order
(A1111's ``queue_lock``, made fair); listings, progress, interrupt and skip never wait for it. A job reads its own
copy of the options (:class:`sdapi.options.OptionsView`): a request's ``override_settings`` never touch the shared
options, so a ``POST /options`` during a job is saved as posted and the job keeps what it started with.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from sdapi.checkpoints import CheckpointCatalog, CheckpointInfo
from sdapi.controlnet.models import ControlNetCatalog
from sdapi.embeddings import scan_embedding_files
from sdapi.engine.api import EmbeddingListing, Engine
from sdapi.engine.upscalers import UpscalerSpec, available_upscalers
from sdapi.errors import ApiError
from sdapi.jobs import Batching, JobCancelled, JobQueue
from sdapi.loras import LoraCatalog
from sdapi.options import Options, OptionsView
from sdapi.serving.task_ids import TaskIds
from sdapi.serving.control import JobControl
from sdapi.serving.controls import JobControls
from sdapi.settings import Settings
from sdapi.styles import StyleDatabase
from sdapi.translate import job_timestamp
from sdapi.vaes import VaeCatalog, vae_catalog

log = logging.getLogger("sdapi")

Job = Callable[[], Any]
AppSettings = Settings

# What the routes take from here besides the state: the job type, the app settings type, and the exception a job
# whose client went away ends with.
__all__ = ["AppSettings", "Job", "JobCancelled", "NoCheckpointAvailable", "ServerState"]


class NoCheckpointAvailable(RuntimeError):
    """No checkpoint in the models folder and the built-in demo is disabled."""


@dataclass
class ServerState:
    """Everything the endpoints share; built once in the app's lifespan (or by tests), never at import time.

    Args:
        settings: start-up settings.
        options: A1111's option values (the shared ones; jobs read copies).
        catalog: the checkpoint catalog.
        engine: the device behind the server.
        styles: ``styles.csv``.
        loras: ``models/Lora``; ``None``: ``<lora:…>`` tags are only stripped.
        dataset, training: the dataset and LoRA training services, built in the lifespan.
        tasks: the Agent Scheduler's queued tasks (``sdapi.serving.tasks.TaskService``), built in the lifespan.
        vaes: the VAE files and A1111's rule choosing one (built from the settings when not given).
        task_ids: A1111's task ids of the generation requests (``/internal/progress``).
        controlnets: the ControlNet files (``models/ControlNet``, ``--controlnet-dir``; built when not given).
        embedding_listing: the textual-inversion embeddings as sorted out for the model loaded last (A1111 lists
            its database as the last model load, job or refresh left it).
    """

    settings: Settings
    options: Options
    catalog: CheckpointCatalog
    engine: Engine
    styles: StyleDatabase | None = None
    loras: LoraCatalog | None = None
    dataset: Any = None
    training: Any = None
    tasks: Any = None
    vaes: VaeCatalog | None = None
    controlnets: ControlNetCatalog | None = None
    embedding_listing: EmbeddingListing = field(default_factory=EmbeddingListing)
    task_ids: TaskIds = field(default_factory=TaskIds)
    queue: JobQueue = field(init=False)
    controls: JobControls = field(init=False)
    _model_lock: threading.RLock = field(default_factory=threading.RLock, init=False)

    def __post_init__(self) -> None:
        batching = Batching(max(1, self.settings.max_batch), max(0.0, self.settings.batch_wait_ms) / 1000,
                            self._batch_capacity)
        # As many workers as the engine runs jobs at once (its replicas), each with its own job control.
        workers = max(1, int(self.engine.parallel_jobs()))
        self.controls = JobControls(workers)
        self.queue = JobQueue(on_start=self.controls.bind_job, max_pending=self.settings.queue_size,
                              batching=batching, workers=workers)
        if self.styles is None:
            self.styles = StyleDatabase(self.settings.styles_path)
        if self.vaes is None:
            self.vaes = vae_catalog(self.settings, self.catalog.hash_cache)
        if self.controlnets is None:
            self.controlnets = ControlNetCatalog(self.settings.controlnet_dirs)

    @property
    def control(self) -> JobControl:
        """The job control of the job running on this thread (a queue worker), or the one ``/progress`` shows."""
        return self.controls.current()

    @control.setter
    def control(self, control: JobControl) -> None:
        self.controls = JobControls(controls=[control])

    # -- checkpoints -------------------------------------------------------------------------------------

    def selected_checkpoint(self, options: Options | OptionsView | None = None) -> CheckpointInfo:
        """The checkpoint the options name (``sd_model_checkpoint``), or A1111's fallback: the first one."""
        wanted = (options or self.options).get("sd_model_checkpoint")
        info = self.catalog.find(wanted)
        if info is None:
            items = self.catalog.items() or self.catalog.refresh()
            if not items:
                raise NoCheckpointAvailable(
                    f"No checkpoints found in the models folder ({self.settings.models_dir.name}): "
                    "put a .safetensors file there")
            info = items[0]
            if wanted:
                log.warning("Checkpoint %s not found; loading fallback %s", wanted, info.title)
        return info

    def find_checkpoint(self, name: str) -> CheckpointInfo | None:
        """The checkpoint a later request field names (``hr_checkpoint_name``, ``refiner_checkpoint``), hashed, as
        A1111's closest-title match finds it; ``None`` when none matches."""
        info = self.catalog.closest(name)
        if info is not None:
            self.catalog.ensure_hashed(info)
        return info

    def activate(self, info: CheckpointInfo) -> CheckpointInfo:
        """Load ``info`` (hashing it once, as A1111 does on load) and make it the shared current checkpoint."""
        with self._model_lock:
            self.catalog.ensure_hashed(info)
            self.engine.load(info.filename)
            self.options.set("sd_model_checkpoint", info.title)
            self.options.set("sd_checkpoint_hash", info.sha256)
        self.sort_out_embeddings(info)
        return info

    def embedding_files(self) -> tuple:
        """The textual-inversion files in ``embeddings/`` (or ``--embeddings-dir``) now, in A1111's walk order."""
        return scan_embedding_files([self.settings.embeddings_path])

    def sort_out_embeddings(self, info: CheckpointInfo, files: tuple | None = None) -> EmbeddingListing:
        """Read the embedding files for the loaded ``info`` and keep the listing ``/embeddings`` shows (A1111
        reloads them with each model and before each job)."""
        self.embedding_listing = self.engine.embeddings(info.filename, self.embedding_files() if files is None
                                                        else files)
        return self.embedding_listing

    def load_selected(self) -> CheckpointInfo:
        """Load whatever the shared options select (start-up, ``/reload-checkpoint``)."""
        return self.activate(self.selected_checkpoint())

    def load_for_job(self, options: OptionsView) -> CheckpointInfo:
        """Load the checkpoint a job's options select; the shared options follow only when the job did not
        override it (A1111 records the model it falls back to)."""
        info = self.selected_checkpoint(options)
        if options.get("sd_model_checkpoint") == options.base("sd_model_checkpoint"):
            return self.activate(info)
        with self._model_lock:
            self.catalog.ensure_hashed(info)
            self.engine.load(info.filename)
        return info

    def _batch_capacity(self, run: Any) -> int:
        """How many images of a queued request's largest pass the device fits in one batch."""
        req = run.checked.req
        scale = max(1.0, float(req.hr_scale or 1)) if getattr(req, "enable_hr", False) else 1.0
        return self.engine.batch_capacity(int(req.width * req.height * scale * scale))

    def upscalers(self) -> list[UpscalerSpec]:
        """Every upscaler the server can run now: the pixel ones and the model files present (rescanned)."""
        return available_upscalers(self.settings.models_root)

    # -- jobs --------------------------------------------------------------------------------------------

    def refuse_while_training(self) -> None:
        """With ``train_busy="reject"``, generation answers 409 while a LoRA training job is queued or runs on the
        generation device (a Ray cluster trains on devices of its own)."""
        training = self.training
        if self.settings.train_busy == "reject" and training is not None and training.blocks_generation():
            raise ApiError("busy: lora training", status_code=409)

    def run_job(self, job_count: int, run: Callable[[], Any]) -> Any:
        """Run ``run`` as the current job (A1111's ``state.begin()``/``end()``), on the worker."""
        self.control.begin(job_count, job_timestamp())
        try:
            return run()
        finally:
            self.control.end()

    def stop_jobs(self, wait: float | None = 5.0) -> None:
        """Shutting down: stop the running job at its next step, fail the queued ones with a 503, refuse new ones
        (a running LoRA job stops as cancelled).

        Args:
            wait: how long to wait for the running job (``None``: return at once, as a signal handler must).
        """
        if self.tasks is not None:
            self.tasks.shutdown()  # before the queue stops: its running task goes back to pending
        if self.training is not None:
            self.training.shutdown()
        self.queue.stop(wait)

    def run_sync(self, job: Job, name: str) -> Any:
        """Queue ``job`` and wait for it on the calling (non-event-loop) thread (CLI, benchmarks, tests)."""
        return self.queue.run_sync(job, name)

    async def run_queued(self, prepare: Callable[[], Job], name: str,
                         client_gone: Callable[[], Awaitable[Any]] | None = None) -> Any:
        """Check a request off the event loop (decoding images is slow), then await its job on the worker.

        Raises:
            JobCancelled: the client went away first (its job was dropped or stopped).
        """
        with self.queue.arriving():  # a worker merging jobs may wait for this one
            queued = self.queue.submit(await run_in_threadpool(prepare), name)
        return await self.queue.wait_async(queued, client_gone=client_gone)

