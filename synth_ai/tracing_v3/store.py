"""The SQLite trace store: one writer thread per file, batched commits, readers apart.

Tables keep the names the existing ecosystem reads (`session_traces`, `session_timesteps`,
`events`, `messages`, `outcome_rewards`, `event_rewards`). Each event and message row also holds
its full JSON `payload`, so a session read back is equal to the one written.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections import defaultdict
from typing import Any

import sqlite_utils

from synth_ai.batch_writer import BatchWriter
from synth_ai.sqlite_db import connect, ensure_schema

from .models import SessionTrace
from .reader import TraceReader
from .rows import ID_TABLES, INSERT_ORDER, IdAllocator, session_rows
from .schema import SCHEMA
from .settings import DEFAULT_DB_PATH

logger = logging.getLogger("synth_ai.tracing_v3")


_TABLES = (
    "event_rewards",
    "outcome_rewards",
    "messages",
    "events",
    "session_timesteps",
    "session_traces",
)


class TraceStore(TraceReader):
    """Writes session traces from a background thread; reads them back on fresh connections.

    `write` answers once the session is committed (group commit: the writer commits whatever
    is queued at once), so an acknowledged session survives a crash of the process. Nothing
    here touches the disk on the caller's thread: the file is opened (and its directory made)
    by the writer, and a store that cannot open reports it through each write and `health()`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_DB_PATH,
        *,
        max_queue: int = 10_000,
        max_batch_rows: int = 500,
    ) -> None:
        super().__init__(path)
        self._db: sqlite_utils.Database | None = None
        self._column_cache: dict[str, list[str]] = {}
        self._inode: int | None = None
        self._writer: BatchWriter[SessionTrace, None] = BatchWriter(
            self._write_batch,
            name=f"trace-writer:{self.path.name}",
            max_queue=max_queue,
            max_batch=max_batch_rows,
            weight=lambda t: 1 + len(t.session_time_steps) + len(t.event_history),
            on_stop=self._close_writer_db,
        )

    # --- writing ---------------------------------------------------------------------------

    async def write(self, trace: SessionTrace) -> None:
        """Store a trace and return once it is committed; raises why it could not be."""
        await self._writer.write(trace)

    def write_nowait(self, trace: SessionTrace) -> bool:
        """Queue a trace without waiting for its commit; False if the queue is full."""
        return self._writer.submit(trace)

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._writer.flush(timeout_s)

    def close(self) -> None:
        self._writer.close()

    def _close_writer_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def write_errors(self) -> int:
        return self._writer.errors

    @property
    def queued(self) -> int:
        return self._writer.queued

    @property
    def written(self) -> int:
        return self._writer.written

    def health(self) -> dict[str, Any]:
        failures = self._writer.failures
        return {
            "healthy": failures.healthy,
            "db": str(self.path),
            "written": self.written,
            "write_errors": failures.count,
            "queued": self.queued,
            "last_error": failures.last_error,
            "last_error_at": failures.last_error_at,
        }

    def _writer_db(self) -> sqlite_utils.Database:
        """The writer's connection, (re)opened when missing or when the file was replaced."""
        try:
            inode: int | None = self.path.stat().st_ino
        except OSError:
            inode = None
        if self._db is None or inode != self._inode:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._column_cache.clear()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ensure_schema(self.path, SCHEMA)
            self._db = connect(self.path)
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._inode = self.path.stat().st_ino
        return self._db

    def _columns(self, db: sqlite_utils.Database, table: str) -> list[str]:
        """The table's columns, asked of sqlite-utils once per connection.

        Rows go in through `executemany` on sqlite-utils' connection rather than `insert_all`:
        its per-value JSON checks took two thirds of the writer's time, and every value here
        is already serialised.
        """
        if table not in self._column_cache:
            self._column_cache[table] = list(db[table].columns_dict)
        return self._column_cache[table]

    def _write_batch(self, batch: list[SessionTrace]) -> list[BaseException | None]:
        """One transaction and one bulk insert per table for the whole batch; if that fails,
        each session again in a savepoint of its own, so one bad session is the only loss.

        A session written again (a retried rollout keeps its correlation id) replaces the
        earlier version, so the latest attempt is what the store holds.
        """
        db = self._writer_db()
        latest = list({trace.session_id: trace for trace in batch}.values())
        (together,) = self._transaction(db, [latest])
        if together is None:
            return [None] * len(batch)
        if isinstance(together, sqlite3.OperationalError):
            raise together  # the file itself is failing (locked, read-only, full)
        alone = self._transaction(db, [[trace] for trace in latest])
        outcome = dict(zip((trace.session_id for trace in latest), alone, strict=True))
        return [outcome[trace.session_id] for trace in batch]

    def _transaction(
        self, db: sqlite_utils.Database, groups: list[list[SessionTrace]]
    ) -> list[BaseException | None]:
        """Write each group in a savepoint of one transaction: a group that fails is undone
        alone, and answered as its exception."""
        outcomes: list[BaseException | None] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for group in groups:
                db.execute("SAVEPOINT sessions")
                try:
                    self._insert(db, group)
                except (sqlite3.Error, ValueError, OverflowError, TypeError) as exc:
                    db.execute("ROLLBACK TO sessions")
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
                db.execute("RELEASE sessions")
            db.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    def _insert(self, db: sqlite_utils.Database, traces: list[SessionTrace]) -> None:
        keys = [trace.session_id for trace in traces]
        marks = ",".join("?" * len(keys))
        rewritten = [
            row[0]
            for row in db.execute(
                f"SELECT session_id FROM session_traces WHERE session_id IN ({marks})", keys
            )
        ]
        if rewritten:
            marks = ",".join("?" * len(rewritten))
            for table in _TABLES:
                db.execute(f"DELETE FROM {table} WHERE session_id IN ({marks})", rewritten)
        ids = IdAllocator(
            {
                table: db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
                for table in ID_TABLES
            }
        )
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for trace in traces:
            for table, table_rows in session_rows(trace, ids).items():
                rows[table] += table_rows
        for table in INSERT_ORDER:
            if rows[table]:
                columns = self._columns(db, table)
                db.conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    [tuple(row.get(column) for column in columns) for row in rows[table]],
                )
