"""The task records, in a small SQLite database in the data dir, so a restart or a ``kill -9`` loses no task.

One row per task. ``request`` holds what the task runs (the client's request as it set it, images included) and is
read only to run or copy a task; ``params`` holds the display form the listings show (images left out), so a page
of a thousand img2img tasks never reads their images. Every write is its own committed transaction (WAL journal):
a task the API acknowledged is on disk, and a finished task's result is recorded only after its files are.

Order: pending tasks run by ``priority`` (millisecond timestamps at creation, so first come first served), ties
broken by insertion order; moving a task changes its priority.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from sdapi.sqlite_db import open_database

PENDING, RUNNING, DONE, FAILED, INTERRUPTED = "pending", "running", "done", "failed", "interrupted"
FINAL_STATUSES = (DONE, FAILED, INTERRUPTED)
STATUSES = (PENDING, RUNNING, *FINAL_STATUSES)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    api_task_id TEXT,
    name TEXT,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    params TEXT NOT NULL,
    checkpoint TEXT,
    vae TEXT,
    callback_url TEXT,
    priority INTEGER NOT NULL,
    result TEXT,
    bookmarked INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    callback_status TEXT,
    callback_detail TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, priority);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Everything but ``request``: what listings read.
VIEW_COLUMNS = ("id", "api_task_id", "name", "type", "status", "params", "checkpoint", "vae", "callback_url",
                "priority", "result", "bookmarked", "attempts", "callback_status", "callback_detail", "created_at",
                "updated_at", "finished_at")
JSON_COLUMNS = ("request", "params", "callback_detail")
PENDING_ORDER = "priority, rowid"


def now_ms() -> int:
    return int(time.time() * 1000)


class TaskStore:
    """The task database.

    Args:
        path: the SQLite file (created with its folder).
    """

    def __init__(self, path: Path):
        self._lock = threading.RLock()
        self._db = open_database(path, SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing --------------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(sql, tuple(params)).fetchall()
        return [self._decode(row) for row in rows]

    def _value(self, sql: str, params: Iterable[Any] = ()) -> Any:
        with self._lock:
            row = self._db.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, tuple(params)).rowcount

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict[str, Any]:
        record = dict(row)
        for column in JSON_COLUMNS:
            if record.get(column) is not None:
                record[column] = json.loads(record[column])
        if "bookmarked" in record:
            record["bookmarked"] = bool(record["bookmarked"])
        return record

    @staticmethod
    def _status_filter(statuses: Sequence[str] | None, bookmarked: bool | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if bookmarked is not None:
            clauses.append("bookmarked = ?")
            params.append(int(bookmarked))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    # -- one task --------------------------------------------------------------------------------------------

    def add(self, record: dict[str, Any]) -> None:
        """Insert a task (``id``, ``type``, ``status``, ``request``, ``params``, ``priority`` and any other column)."""
        now = time.time()
        values = {"created_at": now, "updated_at": now, **record}
        for column in JSON_COLUMNS:
            if values.get(column) is not None:
                values[column] = json.dumps(values[column])
        names = list(values)
        self._write(f"INSERT INTO tasks ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [values[n] for n in names])

    def get(self, task_id: str, with_request: bool = False) -> dict[str, Any] | None:
        """One task, or ``None``; ``with_request`` also reads what it runs."""
        columns = "*" if with_request else ", ".join(VIEW_COLUMNS)
        rows = self._rows(f"SELECT {columns} FROM tasks WHERE id = ?", (task_id,))
        return rows[0] if rows else None

    def update(self, task_id: str, when_status: str | None = None, touch: bool = True, **fields: Any) -> bool:
        """Set columns of one task (JSON columns take Python objects) and, with ``touch``, its ``updated_at``.

        Args:
            when_status: change it only while it has this status.

        Returns:
            Whether a task was changed.
        """
        if touch:
            fields.setdefault("updated_at", time.time())
        names = list(fields)
        values = [json.dumps(fields[n]) if n in JSON_COLUMNS and fields[n] is not None else fields[n]
                  for n in names]
        sql = f"UPDATE tasks SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
        params = [*values, task_id]
        if when_status is not None:
            sql += " AND status = ?"
            params.append(when_status)
        return self._write(sql, params) > 0

    def claim(self, task_id: str) -> bool:
        """Mark a pending task running and count the attempt (committed before it runs, so a crash shows)."""
        return self._write("UPDATE tasks SET status = ?, attempts = attempts + 1, updated_at = ? "
                           "WHERE id = ? AND status = ?", (RUNNING, time.time(), task_id, PENDING)) > 0

    def delete(self, task_ids: Sequence[str]) -> int:
        """Delete tasks by id; returns how many there were."""
        if not task_ids:
            return 0
        return self._write(f"DELETE FROM tasks WHERE id IN ({','.join('?' * len(task_ids))})", task_ids)

    # -- the queue -------------------------------------------------------------------------------------------

    def first_pending(self) -> dict[str, Any] | None:
        """The pending task to run next, with its request."""
        rows = self._rows(f"SELECT * FROM tasks WHERE status = ? ORDER BY {PENDING_ORDER} LIMIT 1", (PENDING,))
        return rows[0] if rows else None

    def position(self, task_id: str) -> int | None:
        """A pending task's place among the pending tasks (0: next to run); ``None`` when it is not pending."""
        with self._lock:
            row = self._db.execute("SELECT priority, rowid FROM tasks WHERE id = ? AND status = ?",
                                   (task_id, PENDING)).fetchone()
            if row is None:
                return None
            return self._db.execute("SELECT COUNT(*) FROM tasks WHERE status = ? AND (priority, rowid) < (?, ?)",
                                    (PENDING, row[0], row[1])).fetchone()[0]

    def queue_page(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """The running task (if any) then the pending ones in run order."""
        return self._rows(f"SELECT {', '.join(VIEW_COLUMNS)} FROM tasks WHERE status IN (?, ?) "
                          f"ORDER BY status = ? DESC, {PENDING_ORDER} LIMIT ? OFFSET ?",
                          (PENDING, RUNNING, RUNNING, limit, offset))

    def next_priority(self) -> int:
        """A priority after every pending task's: now in milliseconds, or one past the last when that is later."""
        last = self._value("SELECT MAX(priority) FROM tasks WHERE status = ?", (PENDING,))
        return max(now_ms(), (last or 0) + 1)

    def first_priority(self) -> int:
        """A priority before every pending task's."""
        first = self._value("SELECT MIN(priority) FROM tasks WHERE status = ?", (PENDING,))
        return now_ms() if first is None else first - 1

    def move_before(self, task_id: str, other_id: str) -> bool:
        """Put a pending task just before another pending one (the other and those after it move down one)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT priority FROM tasks WHERE id = ? AND status = ?",
                                       (other_id, PENDING)).fetchone()
                if row is None:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute("UPDATE tasks SET priority = priority + 1 WHERE status = ? AND priority >= ? "
                                 "AND id != ?", (PENDING, row[0], task_id))
                changed = self._db.execute("UPDATE tasks SET priority = ?, updated_at = ? WHERE id = ? AND status = ?",
                                           (row[0], time.time(), task_id, PENDING)).rowcount
                self._db.execute("COMMIT" if changed else "ROLLBACK")
                return changed > 0
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- listings --------------------------------------------------------------------------------------------

    def page(self, statuses: Sequence[str] | None, limit: int, offset: int, bookmarked: bool | None = None,
             newest_first: bool = True) -> list[dict[str, Any]]:
        """Tasks with one of ``statuses`` (and the bookmark state, when given)."""
        where, params = self._status_filter(statuses, bookmarked)
        order = "finished_at DESC, rowid DESC" if newest_first else PENDING_ORDER
        return self._rows(f"SELECT {', '.join(VIEW_COLUMNS)} FROM tasks{where} ORDER BY {order} LIMIT ? OFFSET ?",
                          (*params, limit, offset))

    def count(self, statuses: Sequence[str] | None = None, bookmarked: bool | None = None) -> int:
        where, params = self._status_filter(statuses, bookmarked)
        return self._value(f"SELECT COUNT(*) FROM tasks{where}", params)

    def ids(self, statuses: Sequence[str], bookmarked: bool | None = None, finished_before: float | None = None
            ) -> list[str]:
        """Ids of the tasks with one of ``statuses`` (for bulk deletes, which also remove files)."""
        where, params = self._status_filter(statuses, bookmarked)
        if finished_before is not None:
            where += " AND finished_at < ?"
            params.append(finished_before)
        with self._lock:
            return [row[0] for row in self._db.execute(f"SELECT id FROM tasks{where}", params).fetchall()]

    def with_requests(self, statuses: Sequence[str], limit: int, offset: int) -> list[dict[str, Any]]:
        """Whole tasks (requests included) in run order, for export."""
        where, params = self._status_filter(statuses, None)
        return self._rows(f"SELECT * FROM tasks{where} ORDER BY {PENDING_ORDER} LIMIT ? OFFSET ?",
                          (*params, limit, offset))

    def pending_callbacks(self) -> list[str]:
        """Finished tasks whose callback has not been delivered or given up yet (after a restart: to resume)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM tasks WHERE callback_status = 'pending' "
                                    f"AND status IN ({','.join('?' * len(FINAL_STATUSES))}) ORDER BY finished_at",
                                    FINAL_STATUSES).fetchall()
        return [row[0] for row in rows]

    # -- server state ----------------------------------------------------------------------------------------

    def get_flag(self, key: str) -> bool:
        return self._value("SELECT value FROM state WHERE key = ?", (key,)) == "1"

    def set_flag(self, key: str, value: bool) -> None:
        self._write("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, "1" if value else "0"))
