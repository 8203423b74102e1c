"""The job event log: `jobs` and `job_events`, on SQLite or PostgreSQL, written by one thread.

Seqs are assigned in the transaction that stores the events (`jobs.last_seq` is advanced with
`UPDATE ... RETURNING`, which on PostgreSQL also locks the job's row against other replicas), so
a seq is acknowledged only once it is committed, a refused append uses up none, and no seq is
ever given twice, whatever crashes. Appends are group-committed: one transaction for whatever is
queued, each append in its own savepoint so one refused append never undoes the others. What
reaches a batch was encoded by its caller, and a post's idempotency key is kept with its events
(see `.log_append`). After `close`, appends fail at once. Reads use other connections (pooled
on PostgreSQL).

Server-run jobs hold a lease (`lease_owner`, `lease_expires_at`) that their server renews; a job
whose lease ran out is failed by whichever server notices first, so a job never stays `running`
after the server running it died.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from synth_ai.batch_writer import BatchWriter
from synth_ai.storage import Connection, DatabaseURL, ensure_schema, open_database

from .log_append import (
    Append,
    EventNotEncodable,
    JobFinished,
    JobNotFound,
    KeyReused,
    LeaseHeld,
    LogFailed,
    Replayed,
    loads,
    store,
    stored_event,
)
from .log_schema import STEPS
from .models import EventIn, JobEvent, JobState

__all__ = [
    "CHANNEL",
    "EventNotEncodable",
    "JobEventLog",
    "JobFinished",
    "JobNotFound",
    "KeyReused",
    "LeaseHeld",
    "LogFailed",
    "Replayed",
]

TERMINAL = tuple(state.value for state in JobState if state.terminal)
CHANNEL = "synth_jobs"
"""Where PostgreSQL announces committed events to every replica (`job_id:last_seq`)."""


Committed = Callable[[list[JobEvent]], None]
DelayPoint = Callable[[str], None]
"""A test's hook, called by name where a race is to be provoked (`"batch"`: the writer thread
is about to store a batch); by default it does nothing."""


def _no_delay(name: str) -> None:
    """No test is watching."""


def _job(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": row["job_id"],
        "kind": row["kind"],
        "state": row["state"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "last_seq": row["last_seq"],
        "config": loads(row["config"]),
        "metadata": loads(row["metadata"]),
        "tenant": row.get("tenant"),
    }


class JobEventLog:
    """`append` answers the numbered events once they are committed; `on_commit` (called from
    the writer thread, in commit order) is how this process's live buses hear of them."""

    def __init__(
        self, url: str | os.PathLike[str] | DatabaseURL, on_commit: Committed | None = None
    ) -> None:
        self.database = open_database(url)
        ensure_schema(self.database, "jobs", STEPS)
        self.on_commit = on_commit
        self.delay_point: DelayPoint = _no_delay
        self._conn: Connection | None = None
        self._writer: BatchWriter[Append, list[JobEvent]] = BatchWriter(
            self._write,
            name=f"job-log:{self.url.engine}",
            weight=lambda append: len(append.events),
            on_stop=self._close_writer,
            refusals=REFUSED,
        )

    @property
    def url(self) -> DatabaseURL:
        return self.database.url

    # --- jobs ------------------------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        kind: str,
        config: dict[str, Any],
        metadata: dict[str, Any],
        tenant: str | None = None,
        lease: tuple[str, float] | None = None,
    ) -> dict[str, Any]:
        """`lease`: (owner, ttl) of the server that runs the job itself."""
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
            "lease_owner": lease[0] if lease else None,
            "lease_expires_at": now + lease[1] if lease else None,
        }
        with self.database.reading() as connection:
            connection.execute(
                f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        return _job(row)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM jobs WHERE job_id = ?", [job_id])
        return _job(rows[0]) if rows else None

    def owns(self, job_id: str, tenant: str | None) -> bool:
        """One query, the same answer and cost for a missing job and another tenant's."""
        sql = "SELECT job_id FROM jobs WHERE job_id = ? AND tenant = ?"
        return bool(self._query(sql, [job_id, tenant]))

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
        with self.database.reading() as connection:
            connection.execute(
                "INSERT INTO server_secrets (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                [name, secrets.token_bytes(32)],
            )
            (row,) = connection.query("SELECT value FROM server_secrets WHERE name = ?", [name])
        return bytes(row["value"])

    def spend_once(self, token_id: str, expires_at: float) -> bool:
        """Record a single-use token as spent; False when it was already, here or at any
        replica on this database. Rows past their expiry are dropped on the way."""
        with self.database.reading() as connection:
            connection.execute("DELETE FROM spent_tokens WHERE expires_at < ?", [time.time()])
            rows = connection.query(
                "INSERT INTO spent_tokens (token_id, expires_at) VALUES (?, ?) "
                "ON CONFLICT (token_id) DO NOTHING RETURNING token_id",
                [token_id, expires_at],
            )
        return bool(rows)

    # --- leases of server-run jobs ---------------------------------------------------------

    def renew_leases(self, owner: str, job_ids: Sequence[str], ttl_s: float) -> None:
        """Hold (or keep holding) the leases of jobs this server runs."""
        if not job_ids:
            return
        marks = ",".join("?" * len(job_ids))
        with self.database.reading() as connection:
            connection.execute(
                f"UPDATE jobs SET lease_owner = ?, lease_expires_at = ? "
                f"WHERE job_id IN ({marks}) AND state NOT IN (?, ?, ?)",
                [owner, time.time() + ttl_s, *job_ids, *TERMINAL],
            )

    def expired_leases(self, now: float) -> list[str]:
        """Unfinished jobs whose server stopped renewing their lease before `now`."""
        rows = self._query(
            "SELECT job_id FROM jobs WHERE lease_owner IS NOT NULL AND lease_expires_at < ? "
            "AND state NOT IN (?, ?, ?)",
            [now, *TERMINAL],
        )
        return [row["job_id"] for row in rows]

    async def fail_expired(self, job_id: str, now: float, message: str) -> list[JobEvent]:
        """Fail a job whose lease ran out before `now`; raises `LeaseHeld` if another server
        got there first or its owner renewed meanwhile."""
        failed = EventIn(
            type="job.status", level="error", message=message, data={"state": "failed"}
        )
        return await self._writer.write(Append.of(job_id, [failed], lease_expired_before=now))

    # --- events ----------------------------------------------------------------------------

    async def append(
        self, job_id: str, events: Sequence[EventIn], key: str | None = None
    ) -> list[JobEvent]:
        """Store events and answer them numbered, after the commit.

        `key`: an idempotency key; a later append of the job with the same key stores nothing
        and answers the events this one stored. Raises `EventNotEncodable` (before queuing),
        `JobNotFound`, `JobFinished`, `KeyReused`, `LogFailed` (nothing stored), or
        `WriterUnavailable` (also once the log is closed).
        """
        return await self._writer.write(Append.of(job_id, events, key))

    def append_nowait(
        self, job_id: str, events: Sequence[EventIn], *, count_loss: bool = True
    ) -> bool:
        """Queue events without waiting for their commit (no seq is reported); False when the
        queue is full. Raises `EventNotEncodable`, or `WriterUnavailable` once closed."""
        return self._writer.submit(Append.of(job_id, events), count_loss=count_loss)

    def count_loss(self, count: int, reason: str) -> None:
        """Events the caller gave up on before they reached the queue, counted as failures."""
        self._writer.failures.failed(count, reason)

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
        return [stored_event(row) for row in rows]

    def first_seq(self, job_id: str) -> int | None:
        rows = self._query("SELECT MIN(seq) AS seq FROM job_events WHERE job_id = ?", [job_id])
        return rows[0]["seq"]  # type: ignore[no-any-return]

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._writer.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Store what is queued (waiting up to `timeout_s`), then refuse more: what is still
        queued then fails with `WriterUnavailable`, as does every later append."""
        self._writer.close(timeout_s)
        self.database.close()

    @property
    def write_errors(self) -> int:
        return self._writer.errors

    def _query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self.database.reading() as connection:
            return connection.query(sql, params)

    def _close_writer(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- the writer thread -----------------------------------------------------------------

    def _write(self, appends: list[Append]) -> list[list[JobEvent] | BaseException]:
        """One transaction, a savepoint per append. Once an append of a job failed in the
        database (a lock not granted in time, say), the job's later appends in the batch fail
        with it at once: storing them would put them before it, and waiting again would stall
        every other job's writes behind the same lock.

        The jobs' rows are locked in the order of their ids (a stable sort keeps each job's
        appends in order): two replicas whose batches name the same jobs in opposite orders
        would otherwise each hold one row the other waits for, a deadlock PostgreSQL breaks
        by failing one batch's appends."""
        self.delay_point("batch")
        try:
            if self._conn is None:
                self._conn = self.database.connect()
            conn = self._conn
            outcomes: dict[int, list[JobEvent] | BaseException] = {}
            committed: list[JobEvent] = []  # what is new: a replayed append is not
            failed: dict[str, LogFailed] = {}
            with conn.transaction():
                for index in sorted(range(len(appends)), key=lambda i: appends[i].job_id):
                    append = appends[index]
                    if append.job_id in failed:
                        outcomes[index] = failed[append.job_id]
                        continue
                    try:
                        with conn.savepoint():
                            numbered = store(conn, append)
                            self.delay_point("stored")
                            conn.notify(CHANNEL, f"{append.job_id}:{numbered[-1].seq}")
                        outcomes[index] = numbered
                        committed += numbered
                    except Replayed as replayed:
                        outcomes[index] = replayed.events
                    except REFUSED as exc:
                        outcomes[index] = exc
                    except self.database.errors as exc:
                        outcomes[index] = failed.setdefault(append.job_id, LogFailed(_reason(exc)))
        except self.database.errors as exc:
            self._close_writer()  # a broken connection is made anew for the next batch
            raise LogFailed(_reason(exc)) from exc
        if committed and self.on_commit is not None:
            self.on_commit(committed)
        return [outcomes[index] for index in range(len(appends))]


REFUSED = (JobNotFound, JobFinished, LeaseHeld, ValueError, OverflowError)
"""What `store` raises for one append the caller should see as it is (not a database failure):
`KeyReused` is a `ValueError`, and so is a value the driver cannot bind."""


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
