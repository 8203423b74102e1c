"""SQLite connections as the trace store and the job log both use them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils


def connect(path: Path) -> sqlite_utils.Database:
    """A connection in autocommit mode (transactions are explicit) that waits on locks."""
    connection = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 5000")
    return sqlite_utils.Database(connection)


def ensure_schema(path: Path, schema: str) -> None:
    """Create the file's tables (idempotent) and switch it to WAL."""
    db = connect(path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(schema)
    finally:
        db.close()
