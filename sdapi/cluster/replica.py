"""The engine deployment: each replica a :class:`sdapi.engine.local.LocalEngine` over the shared models folder.

A job comes with its checkpoint as Serve's multiplexed model id; the replica registers it through
``serve.multiplexed`` (at most ``models_per_replica`` per replica, least recently used dropped), which is what
Serve's router reads to send the next job for that checkpoint to this replica again. The local engine keeps the
same number of pipelines, so the two LRUs agree.

Generation streams its job events back (``handle.options(stream=True)``): ``("sampling", steps)``,
``("step", n, preview)``... then ``("result", images)`` or ``("error", exception)``. Interrupt and skip come the
other way through the board, which the job polls (:class:`sdapi.cluster.job_flags.PolledFlags`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import ray
from ray import serve

from sdapi.cluster.board import open_board
from sdapi.cluster.job_flags import PolledFlags
from sdapi.engine.api import ReplicaStatus
from sdapi.engine.factory import local_engine
from sdapi.settings import Settings

log = logging.getLogger("sdapi")

PREVIEW_EVERY_S = 0.5  # previews rendered at most this often (each is an 1/8-size image sent to the ingress)
# The engine methods the ingress may call; anything else is refused.
CALLS = {"load", "embeddings", "embeddings_used", "batch_capacity", "upscale", "caption", "memory", "device_name",
         "fast_precision", "loaded"}
STREAMS = {"generate", "generate_batch"}


class RemoteEvents:
    """:class:`sdapi.engine.api.JobEvents` on the replica: events go into the stream, flags come from the board.

    Args:
        board: the board actor.
        job_id: the job's id on the board.
        emit: puts an event into the stream (thread-safe).
    """

    def __init__(self, board, job_id: str, emit: Callable[[tuple], None]):
        self.board, self.job_id, self.emit = board, job_id, emit
        self._flags = PolledFlags(board, job_id, {"interrupted": False, "skips": 0})
        self._skips_seen = 0
        self._preview_at = 0.0

    def _read(self) -> dict[str, Any]:
        return self._flags.read()

    @property
    def interrupted(self) -> bool:
        return bool(self._read()["interrupted"])

    def should_stop(self) -> bool:
        flags = self._read()
        return bool(flags["interrupted"]) or flags["skips"] > self._skips_seen

    def next_batch(self) -> None:
        self._skips_seen = self._flags.last["skips"]  # a skip stops the batch it was sent during, not the next one
        self.emit(("next_batch",))

    def next_pass(self) -> None:
        self.emit(("next_pass",))

    def sampling(self, steps: int) -> None:
        self.emit(("sampling", steps))

    def step(self, step: int, preview) -> None:
        image, now = None, time.monotonic()
        if preview is not None and now - self._preview_at >= PREVIEW_EVERY_S:
            self._preview_at = now
            image = preview.image()
        self.emit(("step", step, image))

    def batch_done(self) -> None:
        self.emit(("batch_done",))

    def warn(self, message: str) -> None:
        self.emit(("warn", message))


class EngineReplica:
    """One engine replica (a Serve deployment; :func:`sdapi.cluster.app.build_app` sets its replicas and resources).

    Args:
        settings: the server's settings (folders, device, precision); ``threads`` overrides its thread count.
        models_per_replica: checkpoints a replica keeps loaded (``--models-per-replica``).
        board_name: the board actor's name.
    """

    def __init__(self, settings: Settings, models_per_replica: int, board_name: str):
        self.engine = local_engine(settings, extra_cached=max(0, models_per_replica - 1))
        self.board = open_board(board_name)
        context = serve.get_replica_context()
        self.replica_id = context.replica_id.unique_id
        self.actor_name = ray.get_runtime_context().get_actor_name() or ""
        # Every engine call on one thread, as the single-process server's one worker drives its engine.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sdapi-replica")
        self._running: str | None = None
        self._jobs_done = 0
        self._epoch = 0

        async def load(model_id: str):
            return await self._on_pool(self.engine.load, Path(model_id))

        # Bound at init so that the models per replica come from the settings; Serve finds it on the instance.
        self._models = serve.multiplexed(max_num_models_per_replica=max(1, models_per_replica))(load)
        self._post()
        log.info("Engine replica %s ready on %s", self.replica_id, self.engine.device_name())

    # -- Serve entry points ----------------------------------------------------------------------------------

    async def call(self, method: str, *args) -> tuple[str, Any]:
        """One engine call: ``("ok", value)`` or ``("error", exception)`` (the exception as the engine raised it)."""
        if method not in CALLS:
            return "error", ValueError(f"not an engine call: {method}")
        try:
            if method == "load":
                return "ok", await self._models(str(args[0]))
            await self._settle_unload()
            return "ok", await self._on_pool(getattr(self.engine, method), *args)
        except Exception as exc:  # noqa: BLE001 - the ingress re-raises it
            return "error", exc
        finally:
            self._post()

    async def stream(self, method: str, args: tuple, job_id: str) -> AsyncIterator[tuple]:
        """Run a generation, yielding its events, then ``("result", value)`` or ``("error", exception)``."""
        if method not in STREAMS:
            yield "error", ValueError(f"not an engine stream: {method}")
            return
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        emit = lambda event: loop.call_soon_threadsafe(events.put_nowait, event)  # noqa: E731
        self._running = f"{method} {job_id}"
        try:
            await self._settle_unload()
            model_id = serve.get_multiplexed_model_id()
            if model_id:
                await self._models(model_id)
            self._post()
            yield ("started", self.replica_id)
            work = loop.run_in_executor(self._pool, lambda: getattr(self.engine, method)(
                *args, RemoteEvents(self.board, job_id, emit)))
            while not (work.done() and events.empty()):
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            yield ("result", work.result())
        except Exception as exc:  # noqa: BLE001 - the ingress re-raises it for the job's client
            yield ("error", exc)
        finally:
            self._running = None
            self._jobs_done += 1
            self._post()

    def replica_status(self) -> ReplicaStatus:
        return ReplicaStatus(self.replica_id, self.engine.device_name(),
                             tuple(str(p) for p in self.engine.loaded()), self.engine.checkpoint_loads,
                             self._running, self._jobs_done)

    # -- helpers ---------------------------------------------------------------------------------------------

    async def _on_pool(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args))

    def _post(self) -> None:
        """Post the status (fire and forget: a job never waits on the board)."""
        self._epoch_ref = self.board.post.remote(self.replica_status(), self.actor_name)

    async def _settle_unload(self) -> None:
        """Free every checkpoint if ``/unload-checkpoint`` was asked since this replica last looked."""
        epoch = await self.board.post.remote(self.replica_status(), self.actor_name)
        if epoch > self._epoch:
            self._epoch = epoch
            await self._on_pool(self.engine.unload_all)
