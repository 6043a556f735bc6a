"""A job's flags on the board (interrupt, skip, cancel), as the job running on a replica or a training task reads
them: at most every ``POLL_S`` seconds, keeping the last ones when the board does not answer."""

from __future__ import annotations

import logging
import time
from typing import Any

import ray

log = logging.getLogger("sdapi")

POLL_S = 0.1  # how stale a flag may be when the job looks (one tiny CPU step is ~10 ms)


class PolledFlags:
    """The flags of ``job_id`` on ``board``, starting from ``initial``."""

    def __init__(self, board, job_id: str, initial: dict[str, Any]):
        self.board, self.job_id = board, job_id
        self.last: dict[str, Any] = dict(initial)
        self._read_at = 0.0

    def read(self, fresh: bool = False) -> dict[str, Any]:
        """The flags, read from the board when the last read is older than ``POLL_S`` (or ``fresh``)."""
        now = time.monotonic()
        if fresh or now - self._read_at >= POLL_S:
            self._read_at = now
            try:
                self.last = ray.get(self.board.flags.remote(self.job_id), timeout=5)
            except Exception as exc:  # noqa: BLE001 - a board hiccup must not fail the job; keep the last flags
                log.warning("Could not read the flags of job %s: %s", self.job_id, exc)
        return self.last
