"""The job event log in SQLite: `jobs` and `job_events`, written by one background thread.

Seqs are assigned by the log in the transaction that stores the events (`jobs.last_seq` is read
and advanced inside it), so a seq is acknowledged only once it is committed, a refused append
uses up none, and no seq is ever given twice, whatever crashes. Appends are group-committed:
one transaction for whatever is queued, each append in its own savepoint so one refused append
never undoes the others. Reads use fresh connections.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from synth_ai.batch_writer import BatchWriter
from synth_ai.sqlite_db import connect, ensure_schema

from .models import EventIn, JobEvent, JobState, finite_json, sse_name

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    config TEXT,
    metadata TEXT,
    tenant TEXT
);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    sse_name TEXT NOT NULL,
    level TEXT,
    message TEXT,
    data TEXT,
    ts REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_jobs_created ON jobs(created_at);
CREATE INDEX IF NOT EXISTS idx_job_events_name ON job_events(job_id, sse_name, seq);
"""


class JobNotFound(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id[:80]!r}")
        self.job_id = job_id


class JobFinished(Exception):
    """A status event would move a job out of its terminal state."""

    def __init__(self, job_id: str, state: JobState, requested: JobState) -> None:
        super().__init__(f"job {job_id} is {state.value}; it cannot become {requested.value}")
        self.job_id = job_id
        self.state = state
        self.requested = requested


@dataclass(frozen=True, slots=True)
class Append:
    """Events for one job, stored together or not at all."""

    job_id: str
    events: Sequence[EventIn]


Committed = Callable[[list[JobEvent]], None]


def _loads(text: str | None) -> Any:
    # a NaN stored by an older version must not break every read of the job
    return json.loads(text or "{}", parse_constant=lambda _: None)


def _job(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": row["job_id"],
        "kind": row["kind"],
        "state": row["state"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "last_seq": row["last_seq"],
        "config": _loads(row["config"]),
        "metadata": _loads(row["metadata"]),
        "tenant": row.get("tenant"),
    }


def _event(row: dict[str, Any]) -> JobEvent:
    return JobEvent(
        seq=row["seq"],
        job_id=row["job_id"],
        type=row["type"],
        level=row["level"] or "info",
        message=row["message"],
        data=_loads(row["data"]),
        ts=row["ts"],
    )


class JobEventLog:
    """`append` answers the numbered events once they are committed; `on_commit` (called from
    the writer thread, in commit order) is how a live bus hears of them."""

    def __init__(self, path: str | Path, on_commit: Committed | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ensure_schema(self.path, SCHEMA)
        self._upgrade()
        self.on_commit = on_commit
        self._db: sqlite_utils.Database | None = None
        self._writer: BatchWriter[Append, list[JobEvent]] = BatchWriter(
            self._write,
            name=f"job-log:{self.path.name}",
            weight=lambda append: len(append.events),
            on_stop=self._close_writer,
        )

    def _upgrade(self) -> None:
        """Columns added since the first version, added to an older file in place."""
        db = connect(self.path)
        try:
            if "tenant" not in db["jobs"].columns_dict:
                db.execute("ALTER TABLE jobs ADD COLUMN tenant TEXT")
        finally:
            db.close()

    # --- jobs ------------------------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        kind: str,
        config: dict[str, Any],
        metadata: dict[str, Any],
        tenant: str | None = None,
    ) -> dict[str, Any]:
        now = time.time()
        row = {
            "job_id": job_id,
            "kind": kind,
            "state": JobState.QUEUED.value,
            "created_at": now,
            "updated_at": now,
            "last_seq": 0,
            "config": json.dumps(config, allow_nan=False),
            "metadata": json.dumps(metadata, allow_nan=False),
            "tenant": tenant,
        }
        db = connect(self.path)
        try:
            db["jobs"].insert(row)
        finally:
            db.close()
        return _job(row)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM jobs WHERE job_id = ?", [job_id])
        return _job(rows[0]) if rows else None

    def list_jobs(self, limit: int = 50, tenant: str | None = None) -> list[dict[str, Any]]:
        """Newest first: every job, or only one tenant's."""
        if tenant is None:
            rows = self._query("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", [limit])
        else:
            rows = self._query(
                "SELECT * FROM jobs WHERE tenant = ? ORDER BY created_at DESC LIMIT ?",
                [tenant, limit],
            )
        return [_job(row) for row in rows]

    def secret(self, name: str) -> bytes:
        """A random secret made once and kept in the database, so every server on it (and
        every restart) shares it."""
        db = connect(self.path)
        try:
            db.execute(
                "INSERT OR IGNORE INTO server_secrets (name, value) VALUES (?, ?)",
                [name, secrets.token_bytes(32)],
            )
            return bytes(
                db.execute("SELECT value FROM server_secrets WHERE name = ?", [name]).fetchone()[0]
            )
        finally:
            db.close()

    # --- events ----------------------------------------------------------------------------

    async def append(self, job_id: str, events: Sequence[EventIn]) -> list[JobEvent]:
        """Store events and answer them numbered, after the commit.

        Raises `JobNotFound`, `JobFinished` (nothing stored), or `WriterUnavailable`.
        """
        return await self._writer.write(Append(job_id, events))

    def append_nowait(
        self, job_id: str, events: Sequence[EventIn], *, count_loss: bool = True
    ) -> bool:
        """Queue events without waiting for their commit (no seq is reported); False when the
        queue is full."""
        return self._writer.submit(Append(job_id, events), count_loss=count_loss)

    def events(
        self,
        job_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        names: Sequence[str] | None = None,
    ) -> list[JobEvent]:
        """Events with `seq > after`, oldest first, optionally only some SSE names or types."""
        sql = "SELECT * FROM job_events WHERE job_id = ? AND seq > ?"
        params: list[Any] = [job_id, after]
        if names:
            marks = ",".join("?" * len(names))
            sql += f" AND (sse_name IN ({marks}) OR type IN ({marks}))"
            params += [*names, *names]
        rows = self._query(sql + " ORDER BY seq LIMIT ?", [*params, limit])
        return [_event(row) for row in rows]

    def first_seq(self, job_id: str) -> int | None:
        rows = self._query("SELECT MIN(seq) AS seq FROM job_events WHERE job_id = ?", [job_id])
        return rows[0]["seq"]

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._writer.flush(timeout_s)

    def close(self) -> None:
        self._writer.close()

    @property
    def write_errors(self) -> int:
        return self._writer.errors

    def _query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        db = connect(self.path)
        try:
            return [dict(row) for row in db.query(sql, params)]
        finally:
            db.close()

    def _close_writer(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- the writer thread -----------------------------------------------------------------

    def _write(self, appends: list[Append]) -> list[list[JobEvent] | BaseException]:
        if self._db is None:
            self._db = connect(self.path)
            self._db.execute("PRAGMA synchronous = NORMAL")
        conn = self._db.conn
        outcomes: list[list[JobEvent] | BaseException] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for append in appends:
                conn.execute("SAVEPOINT append")
                try:
                    outcomes.append(self._store(conn, append))
                except (JobNotFound, JobFinished, sqlite3.Error, ValueError, OverflowError) as exc:
                    conn.execute("ROLLBACK TO append")
                    outcomes.append(exc)
                conn.execute("RELEASE append")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        committed = [e for outcome in outcomes if isinstance(outcome, list) for e in outcome]
        if committed and self.on_commit is not None:
            self.on_commit(committed)
        return outcomes

    @staticmethod
    def _store(conn: sqlite3.Connection, append: Append) -> list[JobEvent]:
        row = conn.execute(
            "SELECT last_seq, state FROM jobs WHERE job_id = ?", [append.job_id]
        ).fetchone()
        if row is None:
            raise JobNotFound(append.job_id)
        last_seq, state = int(row[0]), JobState(row[1])
        now = time.time()
        numbered = []
        for event in append.events:
            last_seq += 1
            stored = JobEvent(
                seq=last_seq,
                job_id=append.job_id,
                type=event.type,
                level=event.level,
                message=event.message,
                data=finite_json(event.data),
                ts=event.ts if event.ts is not None else now,
            )
            if (requested := stored.state) is not None:
                if state.terminal and requested is not state:
                    raise JobFinished(append.job_id, state, requested)
                state = requested
            numbered.append(stored)
        conn.executemany(
            "INSERT INTO job_events (job_id, seq, type, sse_name, level, message, data, ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.job_id,
                    e.seq,
                    e.type,
                    sse_name(e.type),
                    e.level,
                    e.message,
                    json.dumps(e.data, allow_nan=False),
                    e.ts,
                )
                for e in numbered
            ],
        )
        conn.execute(
            "UPDATE jobs SET last_seq = ?, state = ?, updated_at = ? WHERE job_id = ?",
            [last_seq, state.value, now, append.job_id],
        )
        return numbered
