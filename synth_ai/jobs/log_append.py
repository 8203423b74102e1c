"""One append to the job log, and how the log's writer thread stores it.

Events are encoded when the append is made (`Append.of`), in the caller's thread: an event that
cannot be stored as JSON is that caller's error, raised to it alone, and never reaches a group
commit where it would fail other jobs' appends.

A post that carries an idempotency key is stored once per job: the key is kept beside the
events (`job_posts`), in the same transaction, and a retry with that key is answered the seqs
first assigned (`Replayed`), whether the first try's answer was lost or is still on its way.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synth_ai.storage import Connection

from .models import EventIn, JobEvent, JobState, finite_json, sse_name


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


class EventNotEncodable(ValueError):
    """An event's data is not JSON (a datetime, an object); nothing of the append is queued."""


class KeyReused(ValueError):
    """An idempotency key already stored other events for this job."""


class Replayed(Exception):
    """The append's key was stored already: `events` are the ones it stored then."""

    def __init__(self, events: list[JobEvent]) -> None:
        super().__init__(f"already stored as seqs {events[0].seq}..{events[-1].seq}")
        self.events = events


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event as it is stored: its data cleaned of non-finite numbers and encoded."""

    type: str
    level: str
    message: str | None
    data: dict[str, Any]
    text: str
    ts: float | None

    @classmethod
    def of(cls, event: EventIn, index: int) -> Encoded:
        try:
            data = finite_json(event.data)
            text = json.dumps(data, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise EventNotEncodable(
                f"event {index} ({event.type}): its data is not JSON: {exc}"
            ) from None
        return cls(event.type, event.level, event.message, data, text, event.ts)


@dataclass(frozen=True, slots=True)
class Append:
    """Events for one job, stored together or not at all.

    `key`: the producer's idempotency key (stored once per job). `lease_expired_before`: store
    only if the job's lease ran out before then (and clear it).
    """

    job_id: str
    events: tuple[Encoded, ...]
    key: str | None = None
    lease_expired_before: float | None = None

    @classmethod
    def of(
        cls,
        job_id: str,
        events: Sequence[EventIn],
        key: str | None = None,
        lease_expired_before: float | None = None,
    ) -> Append:
        """Raises `EventNotEncodable` (and `ValueError` for no events) here, in the caller."""
        if not events:
            raise ValueError("no events to store")
        encoded = tuple(Encoded.of(event, index) for index, event in enumerate(events))
        return cls(job_id, encoded, key, lease_expired_before)

    def digest(self) -> str:
        """What the key stands for: a retry must carry the same events."""
        parts = [[e.type, e.level, e.message, e.text, e.ts] for e in self.events]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def store(conn: Connection, append: Append) -> list[JobEvent]:
    """Number and insert one append within the writer's transaction (in a savepoint).

    Raises `JobNotFound`, `LeaseHeld`, `JobFinished`, `KeyReused` or `Replayed` (undo the
    savepoint, then answer `Replayed.events`).
    """
    now = time.time()
    count = len(append.events)
    # first: the job's row is locked (PostgreSQL) before the key is looked up, so a retry on
    # another replica waits for the first try's commit and then sees its key
    rows = conn.query(
        "UPDATE jobs SET last_seq = last_seq + ?, updated_at = ? WHERE job_id = ? "
        "RETURNING last_seq, state, lease_owner, lease_expires_at",
        [count, now, append.job_id],
    )
    if not rows:
        raise JobNotFound(append.job_id)
    row = rows[0]
    if append.key is not None:
        _check_key(conn, append)
    if append.lease_expired_before is not None and not (
        row["lease_owner"] is not None and row["lease_expires_at"] < append.lease_expired_before
    ):
        raise LeaseHeld(append.job_id)
    state = initial = JobState(row["state"])
    first = int(row["last_seq"]) - count + 1
    numbered = []
    for seq, event in enumerate(append.events, first):
        stored = JobEvent(
            seq=seq,
            job_id=append.job_id,
            type=event.type,
            level=event.level,
            message=event.message,
            data=event.data,
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
            (e.job_id, e.seq, e.type, sse_name(e.type), e.level, e.message, text, e.ts)
            for e, text in zip(numbered, (event.text for event in append.events), strict=True)
        ],
    )
    if append.key is not None:
        conn.execute(
            "INSERT INTO job_posts (job_id, post_key, first_seq, count, digest) "
            "VALUES (?, ?, ?, ?, ?)",
            [append.job_id, append.key, first, count, append.digest()],
        )
    if state is not initial or append.lease_expired_before is not None:
        lease = ", lease_owner = NULL, lease_expires_at = NULL" if state.terminal else ""
        conn.execute(
            f"UPDATE jobs SET state = ?{lease} WHERE job_id = ?", [state.value, append.job_id]
        )
    return numbered


def _check_key(conn: Connection, append: Append) -> None:
    posts = conn.query(
        "SELECT first_seq, count, digest FROM job_posts WHERE job_id = ? AND post_key = ?",
        [append.job_id, append.key],
    )
    if not posts:
        return
    post = posts[0]
    if post["digest"] != append.digest():
        raise KeyReused(
            f"the idempotency key {str(append.key)[:80]!r} already stored other events "
            f"of job {append.job_id}"
        )
    first, last = int(post["first_seq"]), int(post["first_seq"]) + int(post["count"]) - 1
    rows = conn.query(
        "SELECT * FROM job_events WHERE job_id = ? AND seq BETWEEN ? AND ? ORDER BY seq",
        [append.job_id, first, last],
    )
    raise Replayed([stored_event(row) for row in rows])


def loads(text: str | None) -> Any:
    # a NaN stored by an older version must not break every read of the job
    return json.loads(text or "{}", parse_constant=lambda _: None)


def stored_event(row: dict[str, Any]) -> JobEvent:
    return JobEvent(
        seq=row["seq"],
        job_id=row["job_id"],
        type=row["type"],
        level=row["level"] or "info",
        message=row["message"],
        data=loads(row["data"]),
        ts=row["ts"],
    )
