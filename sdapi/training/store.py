"""Training job records in a small SQLite database in the data dir, so a restart loses nothing finished.

One row per job (JSON columns for the nested parts) and one row per optimizer step of loss. Every write is its
own committed transaction; an output is recorded only after its file is in place under its final name.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from sdapi.sqlite_db import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    job_dir TEXT NOT NULL,
    config TEXT NOT NULL,
    dataset TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '[]',
    samples TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE TABLE IF NOT EXISTS losses (
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    loss REAL NOT NULL,
    avg_loss REAL NOT NULL,
    lr_unet REAL,
    lr_te REAL,
    PRIMARY KEY (job_id, step)
);
"""
JSON_COLUMNS = ("config", "dataset", "progress", "outputs", "samples", "error")
ACTIVE_STATUSES = ("queued", "preparing", "running")
FINAL_STATUSES = ("done", "failed", "cancelled")


class JobStore:
    """The job database.

    Args:
        path: the SQLite file (created with its folder).
    """

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = open_database(path, SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        with self._lock:
            self._db.execute(sql, tuple(params))

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict[str, Any]:
        job = dict(row)
        for column in JSON_COLUMNS:
            if job.get(column) is not None:
                job[column] = json.loads(job[column])
        return job

    def create(self, job_id: str, job_dir: Path, config: dict, dataset: dict) -> None:
        """Record a new queued job."""
        self._write("INSERT INTO jobs (id, status, created_at, job_dir, config, dataset) VALUES (?,?,?,?,?,?)",
                    (job_id, "queued", time.time(), str(job_dir), json.dumps(config), json.dumps(dataset)))

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of one job (JSON columns take Python objects)."""
        names = list(fields)
        values = [json.dumps(fields[n]) if n in JSON_COLUMNS and fields[n] is not None else fields[n]
                  for n in names]
        self._write(f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?", (*values, job_id))

    def append(self, job_id: str, column: str, item: dict) -> None:
        """Append one item to a JSON list column (``outputs`` or ``samples``) atomically."""
        assert column in ("outputs", "samples")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(f"SELECT {column} FROM jobs WHERE id = ?", (job_id,)).fetchone()
                items = json.loads(row[0]) + [item]
                self._db.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (json.dumps(items), job_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, job_id: str) -> dict[str, Any] | None:
        """One job, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._decode(row) if row is not None else None

    def list(self) -> list[dict[str, Any]]:
        """Every job, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at, rowid").fetchall()
        return [self._decode(row) for row in rows]

    def add_losses(self, job_id: str, rows: list[tuple]) -> None:
        """Record ``(step, epoch, loss, avg_loss, lr_unet, lr_te)`` rows in one transaction."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO losses VALUES (?,?,?,?,?,?,?)",
                                 [(job_id, *row) for row in rows])
            self._db.execute("COMMIT")

    def losses(self, job_id: str, since_step: int = 0) -> list[dict[str, Any]]:
        """Loss rows with ``step > since_step``, by step."""
        with self._lock:
            rows = self._db.execute("SELECT step, epoch, loss, avg_loss, lr_unet, lr_te FROM losses "
                                    "WHERE job_id = ? AND step > ? ORDER BY step", (job_id, since_step)).fetchall()
        return [dict(row) for row in rows]

    def active(self) -> list[dict[str, Any]]:
        """Jobs not in a final state (after a restart: the ones that were interrupted)."""
        return [job for job in self.list() if job["status"] in ACTIVE_STATUSES]
