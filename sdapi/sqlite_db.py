"""The SQLite files sdapi keeps jobs in (LoRA training jobs, queued tasks): one way of opening them."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating it and its folder) a database shared by threads under the caller's lock, with ``schema``
    applied. Autocommit, WAL and full sync: a row written is on disk when the call returns, so a killed process
    loses nothing it reported."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db
