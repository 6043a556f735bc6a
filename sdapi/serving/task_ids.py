"""A1111's task ids (``modules/progress.py``): which generation requests are queued, running and finished, for
``POST /internal/progress`` and ``GET /internal/pending-tasks``.

Every txt2img/img2img request gets an id, its later-A1111 ``force_task_id`` (v1.8) or a new
``task(<mode>-XXXXXXX)``; a client that sent one can then follow its own request while others run. A1111 keeps
one current task; requests sdapi samples together in one batch are all current at once.

A running id also names the job control it reports to (its queue worker's): with several workers (Ray Serve
replicas) ``/progress``, ``/interrupt`` and ``/skip`` given an id act on that job alone.
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

# A1111 remembers the last 16 finished ids; pending ids are kept up to a bound (a cancelled request never starts).
FINISHED_KEPT = 16
PENDING_KEPT = 4096


def new_task_id(mode: str) -> str:
    """A1111's ``create_task_id``: ``task(txt2img-ABC1234)``."""
    return f"task({mode}-{''.join(random.choices(string.ascii_uppercase + string.digits, k=7))})"


@dataclass(frozen=True)
class TaskStatus:
    """Where one task id stands.

    Args:
        active, queued, completed: A1111's three flags.
        position: 1-based place among the pending ids (0 when not queued); ``pending``: how many there are.
    """

    active: bool
    queued: bool
    completed: bool
    position: int = 0
    pending: int = 0


class TaskIds:
    """The ids of queued, running and recently finished generation requests (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._active: dict[str, Any] = {}  # running id -> its job control
        self._finished: deque[str] = deque(maxlen=FINISHED_KEPT)

    def queued(self, task_id: str) -> None:
        with self._lock:
            self._pending[task_id] = time.time()
            while len(self._pending) > PENDING_KEPT:
                self._pending.popitem(last=False)

    def started(self, task_id: str, control: Any = None) -> None:
        """``task_id`` runs now, reporting to ``control``."""
        with self._lock:
            self._pending.pop(task_id, None)
            self._active[task_id] = control

    def finished(self, task_id: str) -> None:
        with self._lock:
            self._pending.pop(task_id, None)
            self._active.pop(task_id, None)
            self._finished.append(task_id)

    def control(self, task_id: str | None) -> Any:
        """The job control of a running id; ``None`` when it is not running (queued, finished, unknown)."""
        with self._lock:
            return self._active.get(task_id) if task_id else None

    def pending(self) -> list[str]:
        """Pending ids, oldest first."""
        with self._lock:
            return list(self._pending)

    def status(self, task_id: str | None) -> TaskStatus:
        with self._lock:
            ordered = list(self._pending)
            queued = task_id in self._pending
            return TaskStatus(active=task_id in self._active, queued=queued, completed=task_id in self._finished,
                              position=ordered.index(task_id) + 1 if queued else 0, pending=len(ordered))
