"""``/agent-scheduler/v1``: queued txt2img/img2img tasks that outlive the request, persisted, with callbacks.

How a task runs. A queued task is checked exactly as ``/sdapi/v1/txt2img`` (or ``img2img``) checks its request
(a bad one is refused now, not failed later), recorded in the task store, and given a *slot*: a job on the server's
one job queue, behind whatever was queued before it, synchronous requests included. Slots are interchangeable: the
slot that reaches the worker runs the first pending task in the task order at that moment, so moving, running
first or deleting a task only changes the store. There are as many waiting slots as pending tasks; a paused queue
withdraws its slots (nothing is handed to the worker) and resuming gives them back, at the end of the job queue.

Restarts. Tasks and results live in ``DATA_DIR/agent_scheduler`` (SQLite, result images as files). A new process
re-queues the pending tasks in their order. A task that was running when the process died is re-queued once, in
its place (first, unless tasks were moved before it); if the process dies again while it runs, it is marked failed (so one task that kills the server cannot
kill it forever). A task stopped by a graceful shutdown goes back to pending without counting as an attempt.
Finished tasks are kept ``task_history_days`` days (bookmarked ones for ever).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import logging
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable

from PIL import Image, PngImagePlugin
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sdapi.engine.sampling.registry import sampler_items
from sdapi.errors import ApiError, InvalidRequest, envelope
from sdapi.jobs import Job, QueueFull, ShuttingDown
from sdapi.protocol.img2img import StableDiffusionProcessingImg2Img
from sdapi.protocol.tasks import TASK_FIELDS
from sdapi.protocol.txt2img import StableDiffusionProcessingTxt2Img
from sdapi.serving.base import ServerState
from sdapi.serving.progress import progress
from sdapi.serving.requests import img2img_request, txt2img_request
from sdapi.tasks.callbacks import CallbackPolicy, CallbackSender, Delivery, check_callback_url, redact_url
from sdapi.tasks.results import ResultFiles, media_type
from sdapi.tasks.store import DONE, FAILED, FINAL_STATUSES, INTERRUPTED, PENDING, RUNNING, STATUSES, TaskStore

log = logging.getLogger("sdapi")

MAX_PAGE = 1000
"""The most tasks one listing or export returns (the extension's UI asks for 1000)."""
MAX_NAME_LENGTH = 256
MAX_MODEL_NAME_LENGTH = 512
"""``checkpoint`` and ``vae``: a title, file name or hash."""
MAX_IMPORT_CHARS = 64 * 1024 * 1024
MAX_RUNS = 2
"""A task found running after a crash is re-queued until it has been started this many times, then failed."""
MAX_EVENT_STREAMS = 64
EVENT_POLL_S = 0.25
EVENT_KEEPALIVE_S = 15.0
HOUSEKEEPING_S = 5.0
PRUNE_EVERY_S = 3600.0
SYSTEM_CHECKPOINT = "System"
"""The extension's UI name for "no checkpoint of its own"."""
IMAGE_FIELDS = ("init_images", "mask", "script_args", "alwayson_scripts")
"""Left out of a task's displayed ``params`` (the extension's listing does the same)."""
REQUEST_MODELS = {"txt2img": StableDiffusionProcessingTxt2Img, "img2img": StableDiffusionProcessingImg2Img}
REQUEST_CHECKS = {"txt2img": txt2img_request, "img2img": img2img_request}


class TaskQueueFull(QueueFull):
    """``task_queue_size`` tasks are already pending or running (503 with ``Retry-After``)."""

    def __init__(self, limit: int):
        Exception.__init__(self, f"the task queue is full ({limit} tasks pending); retry later")
        self.max_pending = limit


@dataclass(eq=False)
class Slot:
    """A job on the server's queue that runs one task when the worker reaches it.

    Args:
        task_id: the task it runs (``/task/{id}/run`` while paused); ``None``: the first pending task then.
    """

    task_id: str | None = None
    job: Job | None = None


@dataclass
class Current:
    """The task the worker runs now, and its slot (cancelling the slot's job stops the task)."""

    task_id: str
    slot: Slot


def not_found() -> dict[str, Any]:
    return {"success": False, "message": "Task not found"}


def ms(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp * 1000)


def iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def with_checkpoint(request: dict[str, Any], checkpoint: str | None) -> dict[str, Any]:
    """The request with the task's checkpoint applied as ``override_settings.sd_model_checkpoint``."""
    if not checkpoint:
        return request
    overrides = dict(request.get("override_settings") or {})
    overrides["sd_model_checkpoint"] = checkpoint
    return {**request, "override_settings": overrides}


def display_params(model, checkpoint: str | None, vae: str | None) -> dict[str, Any]:
    """A task's ``params`` as listed: every request field (defaults included) but the images, the effective
    sampler under ``sampler_name``, and the checkpoint the task asks for."""
    params = {k: v for k, v in model.model_dump().items() if k not in IMAGE_FIELDS and k not in TASK_FIELDS}
    params["sampler_name"] = params.get("sampler_name") or params.get("sampler_index")
    overrides = params.get("override_settings") or {}
    params["checkpoint"] = checkpoint or overrides.get("sd_model_checkpoint")
    if vae:
        params["vae"] = vae
    return params


def failure_message(exc: BaseException) -> str:
    """What a failed task records: the error as the synchronous route would answer it, never a server path."""
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: a file operation failed (see the server log)"
    _, body = envelope(exc)
    text = body.get("detail") or body.get("errors") or ""
    return f"{body['error']}: {text}" if text else body["error"]


def event(name: str, data: Any) -> str:
    """One Server-Sent Event."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class TaskService:
    """The Agent Scheduler's tasks over the server's job queue.

    Args:
        state: the server state (its queue, control, catalog and settings).
        callback_policy: how callbacks are retried (tests shorten the waits).
    """

    def __init__(self, state: ServerState, callback_policy: CallbackPolicy | None = None):
        settings = state.settings
        self.state = state
        self.store = TaskStore(settings.tasks_dir / "tasks.sqlite3")
        self.results = ResultFiles(settings.tasks_dir / "results")
        self.callbacks = CallbackSender(self._delivery, self._record_callback, callback_policy)
        self.max_tasks = settings.task_queue_size
        self.history_days = settings.task_history_days
        self._lock = threading.RLock()
        self._waiting: list[Slot] = []
        self._current: Current | None = None
        self._paused = self.store.get_flag("paused")
        self._stopping = False
        self._streams = 0
        self._housekeeping_stop = threading.Event()
        self._recover()
        self._housekeeper = threading.Thread(target=self._housekeep, name="sdapi-tasks", daemon=True)
        self._housekeeper.start()

    # -- life cycle ------------------------------------------------------------------------------------------

    def _recover(self) -> None:
        """After a restart: running tasks re-queued once (or failed), old history pruned, callbacks resumed,
        pending tasks queued."""
        for task in self.store.page([RUNNING], self.max_tasks, 0, newest_first=False):
            if task["attempts"] >= MAX_RUNS:
                log.warning("Task %s was running when the server stopped, again: marked failed", task["id"])
                self._finish(task, FAILED, f"the server stopped while this task ran, {task['attempts']} times; "
                                           "it is not run again (requeue it to try once more)")
            else:
                log.warning("Task %s was running when the server stopped: queued again in its place", task["id"])
                self.store.update(task["id"], when_status=RUNNING, status=PENDING)
        self.prune_history()
        for task_id in self.store.pending_callbacks():
            self.callbacks.send(task_id)
        with self._lock:
            self._top_up()
        pending = self.store.count([PENDING])
        if pending:
            log.info("Agent scheduler: %d pending tasks%s", pending, " (queue paused)" if self._paused else "")

    def shutdown(self) -> None:
        """Before the job queue stops: hand no more tasks to the worker; the running task, stopped by the queue,
        goes back to pending. Undelivered callbacks stay pending for the next process."""
        with self._lock:
            self._stopping = True
            for slot in self._waiting:
                self.state.queue.withdraw(slot.job)
            self._waiting.clear()
        self._housekeeping_stop.set()
        self.callbacks.stop()

    def _housekeep(self) -> None:
        # Slots are topped up here too (a safety net: every change already does it); history is pruned hourly.
        last_prune = time.monotonic()
        while not self._housekeeping_stop.wait(HOUSEKEEPING_S):
            try:
                with self._lock:
                    self._top_up()
                if time.monotonic() - last_prune >= PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    self.prune_history()
            except Exception:  # noqa: BLE001 - housekeeping must survive anything
                log.exception("Agent scheduler housekeeping failed")

    def prune_history(self) -> int:
        """Delete finished, unbookmarked tasks older than ``task_history_days`` (0: keep for ever)."""
        if self.history_days <= 0:
            return 0
        old = self.store.ids(FINAL_STATUSES, bookmarked=False, finished_before=time.time() - self.history_days * 86400)
        self._delete(old)
        if old:
            log.info("Agent scheduler: deleted %d tasks older than %d days", len(old), self.history_days)
        return len(old)

    # -- slots (the service lock is held) --------------------------------------------------------------------

    def _submit_slot(self, task_id: str | None = None) -> Slot:
        """Put a slot on the job queue (outside its ``--queue-size`` bound: tasks have ``task_queue_size``).

        Raises:
            ShuttingDown: the job queue is stopping.
        """
        slot = Slot(task_id)
        slot.job = self.state.queue.submit(functools.partial(self._run_slot, slot), "agent-scheduler task",
                                           bounded=False)
        if task_id is None:
            self._waiting.append(slot)
        return slot

    def _top_up(self) -> None:
        """As many waiting slots as pending tasks (unless paused or stopping)."""
        if self._paused or self._stopping:
            return
        for _ in range(self.store.count([PENDING]) - len(self._waiting)):
            try:
                self._submit_slot()
            except ShuttingDown:
                break

    def _withdraw_surplus(self) -> None:
        """Take back waiting slots that no pending task needs (after deletes) while they have not started."""
        while len(self._waiting) > self.store.count([PENDING]):
            if not self.state.queue.withdraw(self._waiting[-1].job):
                break  # it has started: it finds nothing to run and ends
            self._waiting.pop()

    def _claim(self, slot: Slot) -> dict[str, Any] | None:
        if self._stopping:
            return None
        if slot.task_id is not None:
            task = self.store.get(slot.task_id, with_request=True)
            task = task if task is not None and task["status"] == PENDING else None
        else:
            task = None if self._paused else self.store.first_pending()
        if task is None or not self.store.claim(task["id"]):
            return None
        return task

    # -- running a task (on the worker) ----------------------------------------------------------------------

    def _run_slot(self, slot: Slot) -> None:
        with self._lock:
            if slot in self._waiting:
                self._waiting.remove(slot)
            task = self._claim(slot)
            if task is None:
                return
            self._current = Current(task["id"], slot)
        try:
            self._execute(task, slot)
        except Exception:  # noqa: BLE001 - a task must never stay "running" because of a bug here
            log.exception("Task %s: unexpected error", task["id"])
            self._finish(task, FAILED, "internal error (see the server log)")
        finally:
            with self._lock:
                self._current = None
                self._top_up()

    def _execute(self, task: dict[str, Any], slot: Slot) -> None:
        task_id = task["id"]
        log.info("Task %s (%s) started", task_id, task["type"])
        try:
            request = {**with_checkpoint(task["request"], task["checkpoint"]), "send_images": True}
            # The task's id is its job's task id (unless it asked for one): /progress and /interrupt take it.
            request["force_task_id"] = request.get("force_task_id") or task_id
            model = REQUEST_MODELS[task["type"]].model_validate(request)
            body = REQUEST_CHECKS[task["type"]](self.state, model)()
        except Exception as exc:  # noqa: BLE001 - any failure is the task's, reported on it
            if self._stopping and slot.job.cancelled:
                self._back_to_pending(task)
                return
            log.error("Task %s failed: %s", task_id, exc, exc_info=not isinstance(exc, (ApiError, InvalidRequest)))
            self._finish(task, FAILED, failure_message(exc))
            return
        stopped = slot.job.cancelled or self.state.control.flag_interrupted
        if stopped and self._stopping:
            self._back_to_pending(task)
        elif stopped:
            log.info("Task %s interrupted", task_id)
            self._finish(task, INTERRUPTED, None)
        else:
            info = json.loads(body.get("info") or "{}")
            names = self.results.write(task_id, [base64.b64decode(image) for image in body.get("images") or []])
            result = {"images": names, "infotexts": info.get("infotexts", []), "geninfo": info}
            self._finish(task, DONE, json.dumps(result))
            log.info("Task %s done: %d images", task_id, len(names))

    def _back_to_pending(self, task: dict[str, Any]) -> None:
        """The server is stopping: the task runs again in the next process, without counting this attempt."""
        self.store.update(task["id"], when_status=RUNNING, status=PENDING, attempts=task["attempts"])
        log.info("Task %s stopped by the shutdown: pending again", task["id"])

    def _finish(self, task: dict[str, Any], status: str, result: str | None) -> None:
        fields: dict[str, Any] = {"status": status, "result": result, "finished_at": time.time()}
        if task.get("callback_url"):
            fields.update(callback_status="pending", callback_detail={"status": "pending", "attempts": 0})
        self.store.update(task["id"], **fields)
        if task.get("callback_url"):
            self.callbacks.send(task["id"])

    # -- callbacks (the sender's thread) ---------------------------------------------------------------------

    def _delivery(self, task_id: str) -> Delivery | None:
        task = self.store.get(task_id)
        if task is None or not task["callback_url"] or task["status"] not in FINAL_STATUSES:
            return None
        files = []
        if task["status"] == DONE:
            for name in json.loads(task["result"]).get("images", []):
                path = self.results.path(task_id, name)
                if path is not None:
                    files.append((f"{task_id}-{name}", media_type(name), path.read_bytes()))
        return Delivery(task["callback_url"], {"task_id": task_id, "status": task["status"]}, files)

    def _record_callback(self, task_id: str, outcome: dict[str, Any]) -> None:
        self.store.update(task_id, touch=False, callback_status=outcome["status"], callback_detail=outcome)

    # -- queueing --------------------------------------------------------------------------------------------

    def queue_task(self, kind: str, req) -> dict[str, str]:
        """``POST /queue/txt2img`` and ``/queue/img2img``: check the request as the synchronous route does, store
        it and queue it.

        Args:
            kind: ``txt2img`` or ``img2img``.
            req: ``Txt2ImgApiTaskArgs`` / ``Img2ImgApiTaskArgs``.

        Returns:
            ``{"task_id": …}``.

        Raises:
            InvalidRequest, NotFound, ApiError, UnknownSampler, KeyError: what the synchronous route answers.
            TaskQueueFull: ``task_queue_size`` tasks are pending or running (503).
        """
        checkpoint = self._checked_name("checkpoint", req.checkpoint)
        vae = self._checked_name("vae", req.vae)
        callback_url = self._checked_callback(req.callback_url)
        request = req.model_dump(exclude_unset=True, exclude=set(TASK_FIELDS))
        model = self._checked_request(kind, request, checkpoint)
        if vae:
            log.warning("Task vae %r recorded but not applied: use override_settings.sd_vae", vae)
        task_id = self._insert(kind, request, display_params(model, checkpoint, vae), checkpoint=checkpoint,
                               vae=vae, callback_url=callback_url)
        return {"task_id": task_id}

    @staticmethod
    def _checked_name(field: str, value: str | None) -> str | None:
        if value is None or value == "" or (field == "checkpoint" and value == SYSTEM_CHECKPOINT):
            return None
        if len(value) > MAX_MODEL_NAME_LENGTH:
            raise InvalidRequest(f"{field} is longer than {MAX_MODEL_NAME_LENGTH} characters")
        return value

    @staticmethod
    def _checked_callback(url: str | None) -> str | None:
        if not url:
            return None
        try:
            return check_callback_url(url)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def _checked_request(self, kind: str, request: dict[str, Any], checkpoint: str | None):
        """The request model, after every check the synchronous route makes (the job it would run is dropped)."""
        try:
            model = REQUEST_MODELS[kind].model_validate(with_checkpoint(request, checkpoint))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise InvalidRequest(f"invalid {kind} request: {problems}") from None
        REQUEST_CHECKS[kind](self.state, model, track=False)  # checked now, queued as a task
        return model

    def _insert(self, kind: str, request: dict[str, Any], params: dict[str, Any], **fields: Any) -> str:
        task_id = str(uuid.uuid4())
        with self._lock:
            if self.store.count([PENDING, RUNNING]) >= self.max_tasks:
                raise TaskQueueFull(self.max_tasks)
            if not self._paused and not self._stopping:
                self._submit_slot()  # its job cannot start before the row is in: starting takes this lock
            self.store.add({"id": task_id, "type": kind, "status": PENDING, "request": request, "params": params,
                            "priority": self.store.next_priority(), **fields})
        log.info("Task %s (%s) queued", task_id, kind)
        return task_id

    # -- views -----------------------------------------------------------------------------------------------

    @property
    def current_task_id(self) -> str | None:
        current = self._current
        return current.task_id if current is not None else None

    @property
    def paused(self) -> bool:
        return self._paused

    def _view(self, task: dict[str, Any], dates: Callable[[float | None], Any], position: int | None = None
              ) -> dict[str, Any]:
        params = dict(task["params"])
        params["checkpoint"] = task["checkpoint"] or params.get("checkpoint")
        return {
            "id": task["id"], "api_task_id": task["api_task_id"], "api_task_callback": redact_url(task["callback_url"]),
            "name": task["name"], "type": task["type"], "status": task["status"], "params": params,
            "priority": task["priority"], "position": position, "result": task["result"],
            "bookmarked": task["bookmarked"], "created_at": dates(task["created_at"]),
            "updated_at": dates(task["updated_at"]), "attempts": task["attempts"], "callback": task["callback_detail"],
        }

    def queue_status(self, limit: int, offset: int) -> dict[str, Any]:
        """``GET /queue``: the running task first, then the pending ones with their positions."""
        limit = limit or MAX_PAGE
        running = self.store.count([RUNNING])
        tasks = []
        for index, task in enumerate(self.store.queue_page(limit, offset), start=offset):
            position = index - running if task["status"] == PENDING else None
            tasks.append(self._view(task, ms, position))
        return {"current_task_id": self.current_task_id, "pending_tasks": tasks,
                "total_pending_tasks": self.store.count([PENDING, RUNNING]), "paused": self._paused}

    def history(self, status: str | None, limit: int, offset: int) -> dict[str, Any]:
        """``GET /history``: finished tasks, newest first; ``status`` is ``all``, ``bookmarked`` or a status."""
        limit = limit or MAX_PAGE
        bookmarked = True if status == "bookmarked" else None
        if not status or status in ("all", "bookmarked"):
            statuses: tuple[str, ...] = FINAL_STATUSES
        elif status in STATUSES:
            statuses = (status,)
        else:
            return {"tasks": [], "total": 0}
        tasks = [self._view(t, ms) for t in self.store.page(statuses, limit, offset, bookmarked=bookmarked)]
        return {"tasks": tasks, "total": self.store.count(statuses, bookmarked=bookmarked)}

    def task(self, task_id: str) -> dict[str, Any]:
        """``GET /task/{id}``."""
        task = self.store.get(task_id)
        if task is None:
            return not_found()
        return {"success": True, "data": self._view(task, iso, self.store.position(task_id))}

    def position(self, task_id: str) -> dict[str, Any]:
        """``GET /task/{id}/position``."""
        task = self.store.get(task_id)
        if task is None:
            return not_found()
        return {"success": True, "data": {"status": task["status"], "position": self.store.position(task_id)}}

    def samplers(self) -> list[str]:
        return [item["name"] for item in sampler_items()]

    def sd_models(self) -> list[str]:
        return [info.title for info in self.state.catalog.items()]

    # -- results ---------------------------------------------------------------------------------------------

    def _result_files(self, task: dict[str, Any]) -> list[tuple[str, bytes, str]]:
        """``(file name, bytes, infotext)`` of a done task's images that are still on disk."""
        result = json.loads(task["result"])
        infotexts = result.get("infotexts") or []
        files = []
        for index, name in enumerate(result.get("images", [])):
            path = self.results.path(task["id"], name)
            if path is not None:
                files.append((name, path.read_bytes(), infotexts[index] if index < len(infotexts) else ""))
        return files

    def _done_task(self, task_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``(task, None)`` for a done task with a result, else ``(None, the extension's refusal)``."""
        task = self.store.get(task_id)
        if task is None:
            return None, not_found()
        if task["status"] != DONE:
            return None, {"success": False, "message": f"Task is {task['status']}"}
        if not task["result"]:
            return None, {"success": False, "message": "Task result is not available"}
        return task, None

    def results_json(self, task_id: str) -> dict[str, Any]:
        """``GET /task/{id}/results``: each image as a PNG data URL with its infotext."""
        task, refusal = self._done_task(task_id)
        if task is None:
            return refusal
        return {"success": True, "data": [{"image": png_data_url(data, infotext), "infotext": infotext}
                                          for _, data, infotext in self._result_files(task)]}

    def results_zip(self, task_id: str) -> tuple[bytes | None, dict[str, Any] | None]:
        """``GET /task/{id}/results?zip=true``: ``(zip bytes, None)``, or ``(None, refusal)``."""
        task, refusal = self._done_task(task_id)
        if task is None:
            return None, refusal
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data, _ in self._result_files(task):
                archive.writestr(name, data)
        return buffer.getvalue(), None

    # -- managing tasks --------------------------------------------------------------------------------------

    def update(self, task_id: str, name: str | None, checkpoint: str | None, params: dict[str, Any] | None
               ) -> dict[str, Any]:
        """``PUT /task/{id}``: rename, and for a pending task change its checkpoint or request fields (checked as
        when queued).

        Raises:
            InvalidRequest, ...: the changed request fails a check (nothing is changed).
        """
        task = self.store.get(task_id, with_request=True)
        if task is None:
            return not_found()
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = self._checked_task_name(name)
        if checkpoint is not None or params:
            if task["status"] != PENDING:
                return {"success": False, "message": f"Task is {task['status']}"}
            new_checkpoint = self._checked_name("checkpoint", checkpoint) if checkpoint is not None \
                else task["checkpoint"]
            request = {**task["request"], **{k: v for k, v in (params or {}).items() if k not in TASK_FIELDS}}
            model = self._checked_request(task["type"], request, new_checkpoint)
            # Stored without the checkpoint, which is applied when it runs (so a later edit can drop it).
            changes.update(request=request, checkpoint=new_checkpoint,
                           params=display_params(model, new_checkpoint, task["vae"]))
        if changes:
            self.store.update(task_id, **changes)
        return {"success": True, "message": "Task updated."}

    @staticmethod
    def _checked_task_name(name: str) -> str:
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidRequest(f"name is longer than {MAX_NAME_LENGTH} characters")
        return name

    def run(self, task_id: str) -> dict[str, Any]:
        """``POST /task/{id}/run``: run a pending task next (even while the queue is paused)."""
        task = self.store.get(task_id)
        if task is None:
            return not_found()
        if task["status"] != PENDING:
            return {"success": False, "message": f"Task is {task['status']}"}
        with self._lock:
            idle = self._current is None and not self.state.queue.busy
            self.store.update(task_id, when_status=PENDING, priority=self.store.first_priority())
            if self._paused:
                self._submit_slot(task_id)
        return {"success": True, "message": "Task is executing" if idle else "Task is scheduled to run next"}

    def requeue(self, task_id: str) -> dict[str, Any]:
        """``POST /task/{id}/requeue``: a copy of the task as a new pending task."""
        task = self.store.get(task_id, with_request=True)
        if task is None:
            return not_found()
        name = f"Copy of {task['name']}"[:MAX_NAME_LENGTH] if task["name"] else None
        self._insert(task["type"], task["request"], task["params"], name=name, checkpoint=task["checkpoint"],
                     vae=task["vae"], callback_url=task["callback_url"], api_task_id=task["api_task_id"])
        return {"success": True, "message": "Task requeued"}

    def requeue_failed(self) -> dict[str, Any]:
        """``POST /task/requeue-failed``: every failed task back to pending, at the end of the queue."""
        failed = self.store.ids([FAILED])
        if not failed:
            return {"success": False, "message": "No failed tasks"}
        with self._lock:
            room = max(self.max_tasks - self.store.count([PENDING, RUNNING]), 0)
            for task_id in failed[:room]:
                self.store.update(task_id, when_status=FAILED, status=PENDING, result=None, attempts=0,
                                  finished_at=None, priority=self.store.next_priority(), callback_status=None,
                                  callback_detail=None)
            self._top_up()
        return {"success": True, "message": f"Requeued {min(len(failed), room)} failed tasks"}

    def delete(self, task_id: str) -> dict[str, Any]:
        """``DELETE /task/{id}``: interrupt the running task, or delete any other (its result files too)."""
        with self._lock:
            current = self._current
            if current is not None and current.task_id == task_id:
                self.state.queue.cancel(current.slot.job)
                return {"success": True, "message": "Task interrupted"}
            if self.store.get(task_id) is None:
                return not_found()
            self._delete([task_id])
            self._withdraw_surplus()
        return {"success": True, "message": "Task deleted"}

    def _delete(self, task_ids: list[str]) -> None:
        self.store.delete(task_ids)
        for task_id in task_ids:
            self.results.delete(task_id)

    def move(self, task_id: str, over_id: str) -> dict[str, Any]:
        """``POST /task/{id}/move/{over_id}``: before another pending task, or to the ``top`` or ``bottom``."""
        task = self.store.get(task_id)
        if task is None:
            return not_found()
        if task["status"] != PENDING:
            return {"success": False, "message": f"Task is {task['status']}"}
        if over_id == "top":
            self.store.update(task_id, when_status=PENDING, priority=self.store.first_priority())
            return {"success": True, "message": "Task moved to top"}
        if over_id == "bottom":
            self.store.update(task_id, when_status=PENDING, priority=self.store.next_priority())
            return {"success": True, "message": "Task moved to bottom"}
        if over_id == task_id:
            return {"success": True, "message": "Task moved"}
        if self.store.get(over_id) is None:
            return not_found()
        if not self.store.move_before(task_id, over_id):
            return {"success": False, "message": "Tasks can only be moved among pending tasks"}
        return {"success": True, "message": "Task moved"}

    def set_bookmark(self, task_id: str, bookmarked: bool) -> dict[str, Any]:
        """``POST /task/{id}/bookmark`` / ``unbookmark``: a bookmarked task is kept by every clean-up."""
        if not self.store.update(task_id, bookmarked=int(bookmarked)):
            return not_found()
        return {"success": True, "message": "Task bookmarked" if bookmarked else "Task unbookmarked"}

    def rename(self, task_id: str, name: str) -> dict[str, Any]:
        """``POST /task/{id}/rename?name=…``."""
        if not self.store.update(task_id, name=self._checked_task_name(name)):
            return not_found()
        return {"success": True, "message": "Task renamed."}

    def pause(self) -> dict[str, Any]:
        """``POST /queue/pause``: the running task finishes; no pending task is handed to the worker."""
        with self._lock:
            self._paused = True
            self.store.set_flag("paused", True)
            for slot in list(self._waiting):
                if self.state.queue.withdraw(slot.job):
                    self._waiting.remove(slot)
        return {"success": True, "message": "Queue paused."}

    def resume(self) -> dict[str, Any]:
        """``POST /queue/resume``."""
        with self._lock:
            self._paused = False
            self.store.set_flag("paused", False)
            self._top_up()
        return {"success": True, "message": "Queue resumed."}

    def clear_queue(self) -> dict[str, Any]:
        """``POST /queue/clear``: delete the pending tasks (bookmarked ones stay, as in the extension)."""
        with self._lock:
            self._delete(self.store.ids([PENDING], bookmarked=False))
            self._withdraw_surplus()
        return {"success": True, "message": "Queue cleared."}

    def clear_history(self) -> dict[str, Any]:
        """``POST /history/clear``: delete the done, failed and interrupted tasks that are not bookmarked."""
        self._delete(self.store.ids(FINAL_STATUSES, bookmarked=False))
        return {"success": True, "message": "History cleared."}

    # -- export / import -------------------------------------------------------------------------------------

    def export(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """``GET /export``: the pending tasks in the extension's export shape (``params.args`` is the request)."""
        exported = []
        for task in self.store.with_requests([PENDING], limit or MAX_PAGE, offset):
            exported.append({
                "id": task["id"], "api_task_id": task["api_task_id"], "api_task_callback": task["callback_url"],
                "name": task["name"], "type": task["type"], "status": task["status"],
                "params": {"args": task["request"], "checkpoint": task["checkpoint"], "vae": task["vae"],
                           "is_ui": False, "is_img2img": task["type"] == "img2img"},
                "script_params": "", "priority": task["priority"], "result": None, "bookmarked": task["bookmarked"],
                "created_at": int(task["created_at"]), "updated_at": int(task["updated_at"]),
            })
        return exported

    def import_tasks(self, content: str) -> dict[str, Any]:
        """``POST /import``: queue every task of an export (new ids, pending, in their order), or none of them."""
        if len(content) > MAX_IMPORT_CHARS:
            raise InvalidRequest(f"content is longer than {MAX_IMPORT_CHARS} characters")
        try:
            items = json.loads(content)
            if not isinstance(items, list):
                raise ValueError("not a JSON list")
            if len(items) > self.max_tasks - self.store.count([PENDING, RUNNING]):
                raise ValueError("more tasks than the task queue has room for")
            checked = [self._imported(item) for item in sorted(items, key=lambda i: i.get("priority") or 0)]
        except Exception as exc:  # noqa: BLE001 - any refusal of any task refuses the import, as in the extension
            log.warning("Import refused: %s", exc)
            return {"success": False, "message": f"Import Failed: {failure_message(exc)}"}
        for kind, request, params, fields in checked:
            self._insert(kind, request, params, **fields)
        return {"success": True, "message": "Queue imported"}

    def _imported(self, item: dict[str, Any]) -> tuple[str, dict, dict, dict]:
        kind = item["type"]
        if kind not in REQUEST_MODELS:
            raise ValueError(f"unknown task type {kind!r}")
        params = item.get("params") or {}
        # The extension's own exports nest the request under "args"; a UI task's args are a list sdapi cannot run.
        request = params["args"] if "args" in params else params
        if not isinstance(request, dict):
            raise ValueError("only API tasks (params.args an object) can be imported")
        request = {k: v for k, v in request.items() if k not in TASK_FIELDS}
        checkpoint = self._checked_name("checkpoint", params.get("checkpoint", item.get("checkpoint")))
        vae = self._checked_name("vae", params.get("vae"))
        name = item.get("name")
        fields = {"checkpoint": checkpoint, "vae": vae, "callback_url": self._checked_callback(item.get("api_task_callback")),
                  "name": self._checked_task_name(name) if isinstance(name, str) else None}
        model = self._checked_request(kind, request, checkpoint)
        return kind, request, display_params(model, checkpoint, vae), fields

    # -- live events -----------------------------------------------------------------------------------------

    def check_stream_room(self) -> None:
        """Refuse a new event stream while :data:`MAX_EVENT_STREAMS` are open.

        Raises:
            ApiError: 503.
        """
        if self._streams >= MAX_EVENT_STREAMS:
            raise ApiError(f"too many event streams open ({MAX_EVENT_STREAMS})", status_code=503)

    def _count_stream(self, delta: int) -> None:
        with self._lock:
            self._streams += delta

    def exists(self, task_id: str) -> bool:
        return self.store.get(task_id) is not None

    async def events(self, task_id: str, disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
        """``GET /task/{id}/events`` (sdapi's own): Server-Sent Events until the task ends.

        ``status`` (status and queue position, on each change), ``progress`` (``/sdapi/v1/progress``'s body, on
        each step while it runs), ``preview`` (a live preview data URL, when one is rendered) and a last ``result``
        (the images and infotexts of a done task, or the error of a failed one), or ``error`` when the task is
        deleted meanwhile.
        """
        last_status = last_step = last_preview = None
        last_sent = time.monotonic()
        # Counted here, not by the route: a stream that never starts never ends either.
        self._count_stream(1)
        try:
            while not await disconnected():
                chunks: list[str] = []
                task = await run_in_threadpool(self.store.get, task_id)
                if task is None:
                    yield event("error", not_found())
                    return
                status = (task["status"], self.store.position(task_id))
                if status != last_status:
                    last_status = status
                    chunks.append(event("status", {"id": task_id, "status": status[0], "position": status[1]}))
                if task["status"] == RUNNING and self.current_task_id == task_id:
                    body = await run_in_threadpool(progress, self.state)
                    preview = body.pop("current_image")
                    step = (body["state"]["job_no"], body["state"]["sampling_step"], body["state"]["job_count"])
                    if step != last_step:
                        last_step = step
                        chunks.append(event("progress", body))
                    if preview and preview != last_preview:
                        last_preview = preview
                        fmt = str(self.state.options.get("samples_format")).lower().replace("jpg", "jpeg")
                        chunks.append(event("preview", {"image": f"data:image/{fmt};base64,{preview}"}))
                if task["status"] in FINAL_STATUSES:
                    chunks.append(event("result", await run_in_threadpool(self._final_event, task)))
                if not chunks and time.monotonic() - last_sent >= EVENT_KEEPALIVE_S:
                    chunks.append(": keep-alive\n\n")
                if chunks:
                    last_sent = time.monotonic()
                    yield "".join(chunks)
                if task["status"] in FINAL_STATUSES:
                    return
                await asyncio.sleep(EVENT_POLL_S)
        finally:
            self._count_stream(-1)

    def _final_event(self, task: dict[str, Any]) -> dict[str, Any]:
        if task["status"] == DONE:
            results = self.results_json(task["id"])
            return {"id": task["id"], "status": DONE, "images": [r["image"] for r in results.get("data", [])],
                    "infotexts": [r["infotext"] for r in results.get("data", [])]}
        return {"id": task["id"], "status": task["status"], "message": task["result"]}


def png_data_url(data: bytes, infotext: str) -> str:
    """An image as the extension returns it: a PNG data URL carrying its infotext."""
    if not data.startswith(b"\x89PNG"):
        image = Image.open(io.BytesIO(data))
        meta = PngImagePlugin.PngInfo()
        if infotext:
            meta.add_text("parameters", infotext)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=meta)
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


_service_lock = threading.Lock()


def task_service(state: ServerState) -> TaskService:
    """The server's task service: built in the app's lifespan, or on first use for a state built without one."""
    with _service_lock:
        if state.tasks is None:
            state.tasks = TaskService(state)
        return state.tasks
