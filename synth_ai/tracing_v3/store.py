"""The trace store: one writer thread per store, batched commits, readers apart; SQLite or
PostgreSQL, chosen by the store's URL, through the same code.

Tables keep the names the existing ecosystem reads (`session_traces`, `session_timesteps`,
`events`, `messages`, `outcome_rewards`, `event_rewards`). Each event and message row also holds
its full JSON `payload`, so a session read back is equal to the one written. Row ids are reserved
from the database (a sequence on PostgreSQL), so a fleet of processes can write one store.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from synth_ai.batch_writer import BatchWriter
from synth_ai.storage import Connection, DatabaseURL, ensure_schema

from .models import SessionTrace
from .reader import TraceReader
from .rows import INSERT_ORDER, ReservedIds, id_counts, insert, session_rows
from .schema import COMPONENT, STEPS
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


def _label(url: DatabaseURL) -> str:
    """A short name for the writer thread and its log lines: the file's, or the database's."""
    if url.path is not None:
        return url.path.name
    assert url.conninfo is not None
    return urlsplit(url.conninfo).path.strip("/") or "postgresql"


class TraceStore(TraceReader):
    """Writes session traces from a background thread; reads them back apart from the writer.

    `write` answers once the session is committed (group commit: the writer commits whatever
    is queued at once), so an acknowledged session survives a crash of the process. Nothing
    here touches the database on the caller's thread: the writer opens it (makes a file's
    directory, loads the driver, runs the schema), and a store that cannot open reports it
    through each write and `health()`.
    """

    def __init__(
        self,
        url: DatabaseURL | str | os.PathLike[str] = DEFAULT_DB_PATH,
        *,
        max_queue: int = 10_000,
        max_batch_rows: int = 500,
    ) -> None:
        super().__init__(url)
        self._connection: Connection | None = None
        self._inode: int | None = None
        self.delay_point: Callable[[str], None] | None = None
        """A test's hook, called by the writer thread at named points of a batch's write
        ("ids_reserved": between counting a batch's rows and building them)."""
        self._writer: BatchWriter[SessionTrace, None] = BatchWriter(
            self._write_batch,
            name=f"trace-writer:{_label(self.url)}",
            max_queue=max_queue,
            max_batch=max_batch_rows,
            weight=lambda t: 1 + len(t.session_time_steps) + len(t.event_history),
            on_stop=self._drop_connection,
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
        super().close()

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
            "db": str(self.url),
            "written": self.written,
            "write_errors": failures.count,
            "queued": self.queued,
            "last_error": failures.last_error,
            "last_error_at": failures.last_error_at,
        }

    def _file_inode(self) -> int | None:
        """The SQLite file's inode (None when it is missing, and for PostgreSQL)."""
        if self.url.path is None:
            return None
        try:
            return self.url.path.stat().st_ino
        except OSError:
            return None

    def _writer_connection(self) -> Connection:
        """The writer's connection, (re)opened when missing (at first, after the database
        failed) or when the SQLite file was replaced under it."""
        inode = self._file_inode()
        if self._connection is not None and inode == self._inode:
            return self._connection
        self._drop_connection()
        database = self.database
        ensure_schema(database, COMPONENT, STEPS)
        connection = database.connect()
        if self.url.engine == "sqlite":
            connection.execute("PRAGMA synchronous = NORMAL")  # survives the process, not power
        self._connection, self._inode = connection, self._file_inode()
        return connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                logger.debug("closing a failed trace writer connection", exc_info=True)

    def _refusals(self) -> tuple[type[BaseException], ...]:
        """What the database (or the driver, binding a value) raises for one bad session."""
        return (*self.database.errors, ValueError, OverflowError, TypeError)

    def _write_batch(self, batch: list[SessionTrace]) -> list[BaseException | None]:
        """One transaction and one bulk insert per table for the whole batch; if that fails,
        each session again in a savepoint of its own, so one bad session is the only loss.

        A session written again (a retried rollout keeps its correlation id) replaces the
        earlier version, so the latest attempt is what the store holds. Sessions go in by id,
        so writers in two processes given the same sessions take their keys in one order
        rather than deadlock.
        """
        connection = self._writer_connection()
        by_id = {trace.session_id: trace for trace in batch}
        latest = [by_id[session_id] for session_id in sorted(by_id)]
        try:
            if self._together(connection, latest):
                return [None] * len(batch)
            alone = self._one_by_one(connection, latest)
        except Exception:
            self._drop_connection()
            raise
        outcome = dict(zip((trace.session_id for trace in latest), alone, strict=True))
        return [outcome[trace.session_id] for trace in batch]

    def _together(self, connection: Connection, traces: list[SessionTrace]) -> bool:
        """All in one transaction (no savepoint: fewer round trips to a server); False when
        the database refused one of them, and so kept none."""
        try:
            with connection.transaction():
                self._insert(connection, traces)
        except self.database.outages:
            raise
        except self._refusals():
            return False
        return True

    def _one_by_one(
        self, connection: Connection, traces: list[SessionTrace]
    ) -> list[BaseException | None]:
        """Each in a savepoint of one transaction: a session the database refuses is undone
        alone, and answered as its exception; an outage fails them all."""
        outages, refusals = self.database.outages, self._refusals()
        outcomes: list[BaseException | None] = []
        with connection.transaction():
            for trace in traces:
                try:
                    with connection.savepoint():
                        self._insert(connection, [trace])
                except outages:
                    raise
                except refusals as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
        return outcomes

    def _insert(self, connection: Connection, traces: list[SessionTrace]) -> None:
        keys = [trace.session_id for trace in traces]
        marks = ", ".join("?" * len(keys))
        rewritten = [
            row["session_id"]
            for row in connection.query(
                f"SELECT session_id FROM session_traces WHERE session_id IN ({marks})", keys
            )
        ]
        if rewritten:
            marks = ", ".join("?" * len(rewritten))
            for table in _TABLES:
                connection.execute(f"DELETE FROM {table} WHERE session_id IN ({marks})", rewritten)
        ids = ReservedIds(
            {
                table: self.database.reserve_ids(connection, table, count) if count else []
                for table, count in id_counts(traces).items()
            }
        )
        if self.delay_point is not None:
            self.delay_point("ids_reserved")
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for trace in traces:
            for table, table_rows in session_rows(trace, ids).items():
                rows[table] += table_rows
        for table in INSERT_ORDER:
            if rows[table]:
                connection.executemany(*insert(table, rows[table]))
