"""The job event log: `jobs` and `job_events`, on SQLite or PostgreSQL, written by one thread.

Seqs are assigned in the transaction that stores the events (`jobs.last_seq` is advanced with
`UPDATE ... RETURNING`, which on PostgreSQL also locks the job's row against other replicas), so
a seq is acknowledged only once it is committed, a refused append uses up none, and no seq is
ever given twice, whatever crashes. Appends are group-committed: one transaction for whatever is
queued, each append in its own savepoint so one refused append never undoes the others. Reads
use other connections (pooled on PostgreSQL).

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
from dataclasses import dataclass
from typing import Any

from synth_ai.batch_writer import BatchWriter
from synth_ai.storage import Connection, DatabaseURL, ensure_schema, open_database

from .log_schema import STEPS
from .models import EventIn, JobEvent, JobState, finite_json, sse_name

TERMINAL = tuple(state.value for state in JobState if state.terminal)
CHANNEL = "synth_jobs"
"""Where PostgreSQL announces committed events to every replica (`job_id:last_seq`)."""


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


class LeaseHeld(Exception):
    """The job's lease has not run out (or it has none): nothing to take over."""


class LogFailed(Exception):
    """The database refused or failed; nothing of the append was stored."""


@dataclass(frozen=True, slots=True)
class Append:
    """Events for one job, stored together or not at all.

    `lease_expired_before`: store only if the job's lease ran out before then (and clear it).
    """

    job_id: str
    events: Sequence[EventIn]
    lease_expired_before: float | None = None


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
    the writer thread, in commit order) is how this process's live buses hear of them."""

    def __init__(
        self, url: str | os.PathLike[str] | DatabaseURL, on_commit: Committed | None = None
    ) -> None:
        self.database = open_database(url)
        ensure_schema(self.database, "jobs", STEPS)
        self.on_commit = on_commit
        self._conn: Connection | None = None
        self._writer: BatchWriter[Append, list[JobEvent]] = BatchWriter(
            self._write,
            name=f"job-log:{self.url.engine}",
            weight=lambda append: len(append.events),
            on_stop=self._close_writer,
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
        return await self._writer.write(Append(job_id, [failed], lease_expired_before=now))

    # --- events ----------------------------------------------------------------------------

    async def append(self, job_id: str, events: Sequence[EventIn]) -> list[JobEvent]:
        """Store events and answer them numbered, after the commit.

        Raises `JobNotFound`, `JobFinished`, `LogFailed` (nothing stored), or
        `WriterUnavailable`.
        """
        return await self._writer.write(Append(job_id, events))

    def append_nowait(
        self, job_id: str, events: Sequence[EventIn], *, count_loss: bool = True
    ) -> bool:
        """Queue events without waiting for their commit (no seq is reported); False when the
        queue is full."""
        return self._writer.submit(Append(job_id, events), count_loss=count_loss)

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
        return [_event(row) for row in rows]

    def first_seq(self, job_id: str) -> int | None:
        rows = self._query("SELECT MIN(seq) AS seq FROM job_events WHERE job_id = ?", [job_id])
        return rows[0]["seq"]  # type: ignore[no-any-return]

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._writer.flush(timeout_s)

    def close(self) -> None:
        self._writer.close()
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
        refused: tuple[type[BaseException], ...] = (
            JobNotFound,
            JobFinished,
            LeaseHeld,
            ValueError,
            OverflowError,
            *self.database.errors,
        )
        try:
            if self._conn is None:
                self._conn = self.database.connect()
            conn = self._conn
            outcomes: list[list[JobEvent] | BaseException] = []
            with conn.transaction():
                for append in appends:
                    try:
                        with conn.savepoint():
                            numbered = self._store(conn, append)
                            conn.notify(CHANNEL, f"{append.job_id}:{numbered[-1].seq}")
                        outcomes.append(numbered)
                    except refused as exc:
                        outcomes.append(exc if _ours(exc) else LogFailed(_reason(exc)))
        except self.database.errors as exc:
            self._close_writer()  # a broken connection is made anew for the next batch
            raise LogFailed(_reason(exc)) from exc
        committed = [e for outcome in outcomes if isinstance(outcome, list) for e in outcome]
        if committed and self.on_commit is not None:
            self.on_commit(committed)
        return outcomes

    @staticmethod
    def _store(conn: Connection, append: Append) -> list[JobEvent]:
        if not append.events:
            raise ValueError("no events to store")
        now = time.time()
        rows = conn.query(
            "UPDATE jobs SET last_seq = last_seq + ?, updated_at = ? WHERE job_id = ? "
            "RETURNING last_seq, state, lease_owner, lease_expires_at",
            [len(append.events), now, append.job_id],
        )
        if not rows:
            raise JobNotFound(append.job_id)
        row = rows[0]
        if append.lease_expired_before is not None and not (
            row["lease_owner"] is not None and row["lease_expires_at"] < append.lease_expired_before
        ):
            raise LeaseHeld(append.job_id)
        state = initial = JobState(row["state"])
        seq = int(row["last_seq"]) - len(append.events)
        numbered = []
        for event in append.events:
            seq += 1
            stored = JobEvent(
                seq=seq,
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
        if state is not initial or append.lease_expired_before is not None:
            lease = ", lease_owner = NULL, lease_expires_at = NULL" if state.terminal else ""
            conn.execute(
                f"UPDATE jobs SET state = ?{lease} WHERE job_id = ?", [state.value, append.job_id]
            )
        return numbered


def _ours(exc: BaseException) -> bool:
    """A refusal the caller should see as it is (not a database failure)."""
    return isinstance(exc, JobNotFound | JobFinished | LeaseHeld | ValueError | OverflowError)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
