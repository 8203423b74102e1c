"""The SQLite engine: one file, WAL, a fresh connection per reader, `BEGIN IMMEDIATE` writers."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from .database import Connection, Database
from .url import DatabaseURL


class SqliteConnection(Connection):
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 5000")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def lock(self, name: str) -> None:
        """`BEGIN IMMEDIATE` already holds the file's only write lock."""

    def close(self) -> None:
        self.conn.close()


class SqliteDatabase(Database):
    ddl_words: ClassVar[dict[str, str]] = {
        "ID": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "INT": "INTEGER",
        "REAL": "REAL",
        "BLOB": "BLOB",
    }
    errors = (sqlite3.Error,)
    outages = (sqlite3.OperationalError,)

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
            connection.execute("PRAGMA journal_mode = WAL")
        finally:
            connection.close()

    def reserve_ids(self, connection: Connection, table: str, count: int) -> list[int]:
        """After the largest id: safe because `BEGIN IMMEDIATE` makes this the only writer."""
        (row,) = connection.query(f"SELECT COALESCE(MAX(id), 0) AS last FROM {table}")
        return list(range(row["last"] + 1, row["last"] + 1 + count))
