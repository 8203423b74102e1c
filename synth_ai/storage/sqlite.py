"""The SQLite engine: one file, WAL, a fresh connection per reader, `BEGIN IMMEDIATE` writers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from .database import Connection, Database, engine_errors
from .url import DatabaseURL

BUSY_TIMEOUT_S = 5.0
"""How long a connection waits for another one's lock before giving up."""


def _mapped() -> AbstractContextManager[None]:
    return engine_errors(sqlite3.Error, sqlite3.OperationalError)


class SqliteConnection(Connection):
    def __init__(self, path: Path) -> None:
        with _mapped():
            self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with _mapped():
            return [dict(row) for row in self.conn.execute(sql, params)]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _mapped():
            self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _mapped():
            self.conn.executemany(sql, rows)

    def begin(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def lock(self, name: str) -> None:
        """`BEGIN IMMEDIATE` already holds the file's only write lock."""

    def close(self) -> None:
        with _mapped():
            self.conn.close()


class SqliteDatabase(Database):
    ddl_words: ClassVar[dict[str, str]] = {
        "ID": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "INT": "INTEGER",
        "REAL": "REAL",
        "BLOB": "BLOB",
    }

    def __init__(self, url: DatabaseURL) -> None:
        assert url.path is not None
        self.url = url
        self.path = url.path

    def connect(self) -> SqliteConnection:
        return SqliteConnection(self.path)

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self.connect()
        try:
            with _mapped():
                _use_wal(connection.conn)
        finally:
            connection.close()

    def reserve_ids(self, connection: Connection, table: str, count: int) -> list[int]:
        """After the largest id: safe because `BEGIN IMMEDIATE` makes this the only writer."""
        (row,) = connection.query(f"SELECT COALESCE(MAX(id), 0) AS last FROM {table}")
        return list(range(row["last"] + 1, row["last"] + 1 + count))


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (a no-op once it is).

    Openers racing on a new file can get "database is locked" at once, without SQLite's busy
    wait: two connections that both read the file and both ask to write cannot both wait, so
    SQLite refuses one. The switch is retried for as long as the busy wait would have lasted.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
