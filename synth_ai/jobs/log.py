"""The job event log in SQLite: `jobs` and `job_events`, written by one background thread.

Events get their `seq` from the job's bus (the single writer) before they reach this log; the
primary key `(job_id, seq)` keeps them unique. Reads use fresh connections.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from synth_ai.batch_writer import BatchWriter
from synth_ai.sqlite_db import connect, ensure_schema

from .models import JobEvent, JobState, sse_name

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    config TEXT,
    metadata TEXT
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
CREATE INDEX IF NOT EXISTS idx_jobs_created ON jobs(created_at);
CREATE INDEX IF NOT EXISTS idx_job_events_name ON job_events(job_id, sse_name, seq);
"""


def _job(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": row["job_id"],
        "kind": row["kind"],
        "state": row["state"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "last_seq": row["last_seq"],
        "config": json.loads(row["config"] or "{}"),
        "metadata": json.loads(row["metadata"] or "{}"),
    }


def _event(row: dict[str, Any]) -> JobEvent:
    return JobEvent(
        seq=row["seq"],
        job_id=row["job_id"],
        type=row["type"],
        level=row["level"] or "info",
        message=row["message"],
        data=json.loads(row["data"] or "{}"),
        ts=row["ts"],
    )


class JobEventLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ensure_schema(self.path, SCHEMA)
        self._db: sqlite_utils.Database | None = None
        self._writer: BatchWriter[JobEvent] = BatchWriter(
            self._write, name=f"job-log:{self.path.name}", on_stop=self._close_writer
        )

    # --- jobs ------------------------------------------------------------------------------

    def create_job(
        self, job_id: str, kind: str, config: dict[str, Any], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        now = time.time()
        row = {
            "job_id": job_id,
            "kind": kind,
            "state": JobState.QUEUED.value,
            "created_at": now,
            "updated_at": now,
            "last_seq": 0,
            "config": json.dumps(config),
            "metadata": json.dumps(metadata),
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

    def list_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", [limit])
        return [_job(row) for row in rows]

    # --- events ----------------------------------------------------------------------------

    def append(self, event: JobEvent) -> None:
        """Queue an event (already numbered) for the writer thread; never blocks."""
        self._writer.submit(event)

    def last_seq(self, job_id: str) -> int:
        rows = self._query(
            "SELECT COALESCE(MAX(seq), 0) AS seq FROM job_events WHERE job_id = ?", [job_id]
        )
        return int(rows[0]["seq"])

    def events(
        self,
        job_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        names: Sequence[str] | None = None,
    ) -> list[JobEvent]:
        """Events with `seq > after`, oldest first, optionally only some SSE names."""
        sql = "SELECT * FROM job_events WHERE job_id = ? AND seq > ?"
        params: list[Any] = [job_id, after]
        if names:
            sql += f" AND sse_name IN ({','.join('?' * len(names))})"
            params += list(names)
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

    def _write(self, events: list[JobEvent]) -> int:
        if self._db is None:
            self._db = connect(self.path)
            self._db.execute("PRAGMA synchronous = NORMAL")
        db = self._db
        latest: dict[str, JobEvent] = {}
        for event in events:
            latest[event.job_id] = event
        with db.atomic():
            db.conn.executemany(
                "INSERT OR IGNORE INTO job_events "
                "(job_id, seq, type, sse_name, level, message, data, ts) "
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
                    for e in events
                ],
            )
            for job_id, event in latest.items():
                db.execute(
                    "UPDATE jobs SET last_seq = MAX(last_seq, ?), updated_at = ? WHERE job_id = ?",
                    [event.seq, event.ts, job_id],
                )
            for event in events:
                if (state := event.state) is not None:
                    db.execute(
                        "UPDATE jobs SET state = ? WHERE job_id = ?", [state.value, event.job_id]
                    )
        return 0
