"""The job log against a database that stalls or fails (issue 26 #7, #8, #10), on real SQLite
files and a real PostgreSQL, through real servers where the fault shows there.

A stuck transaction is another connection holding the job's row (or SQLite's write) lock; the
tests release it when the code under test has reached the point of interest (a retry was sent,
an append is waiting), never after a sleep.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from synth_ai.jobs import EventIn, JobsService, RemoteEmitter, StreamSettings, create_jobs_app
from synth_ai.jobs.log import KeyReused, LogFailed
from synth_ai.storage import open_database
from synth_ai.task import serve_in_background

from .conftest import KEY

HEADERS = {"X-API-Key": KEY}
EVERY_EVENT = StreamSettings(max_metric_hz=0, end_grace_s=0.05)


def line(text: str) -> EventIn:
    return EventIn(type="system.log", message=text)


@contextmanager
def row_locked(url: str, job_id: str) -> Iterator[None]:
    """Another transaction holds the job's row (on SQLite: the file's write lock) until the
    block ends."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute("SELECT 1 FROM jobs WHERE job_id = %s FOR UPDATE", [job_id])
            try:
                yield
            finally:
                conn.rollback()
        return
    conn = sqlite3.connect(url, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def stored(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    page = http.get(f"/api/jobs/{job_id}/events", params={"limit": 1000})
    events: list[dict[str, Any]] = page.json()["events"]
    return events


# --- #7: a retried post is stored once -------------------------------------------------------


class SeenPosts(httpx.HTTPTransport):
    """The emitter's transport, noting the idempotency key of each post of events; `retried`
    is set as the second one goes out."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str | None] = []
        self.retried = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/events"):
            self.keys.append(request.headers.get("idempotency-key"))
            if len(self.keys) >= 2:
                self.retried.set()
        return super().handle_request(request)


@pytest.mark.parametrize("round_", range(5))
def test_a_post_retried_after_a_timeout_is_stored_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, round_: int
) -> None:
    """The first post's commit waits on a lock past the client's timeout; the emitter posts
    again; then the lock goes and both appends reach the writer: one status is stored."""
    monkeypatch.setenv("SYNTH_PG_LOCK_TIMEOUT_SECS", "60")  # the lock outlasts no timeout here
    app = create_jobs_app(database_url, artifacts_dir=tmp_path / "files", settings=EVERY_EVENT)
    with serve_in_background(app) as url, httpx.Client(base_url=url, headers=HEADERS) as http:
        job_id = http.post("/api/jobs", json={"kind": "custom"}).json()["job_id"]
        transport = SeenPosts()
        emitter = RemoteEmitter(
            url, job_id, KEY, timeout_s=0.5, backoff_s=0.01, transport=transport
        )
        try:
            with row_locked(database_url, job_id):
                emitter.emit_status("running", "started")
                assert transport.retried.wait(30), "the emitter never posted again"
            emitter.close(timeout_s=30)
        finally:
            emitter.close(timeout_s=1)
        statuses = [e for e in stored(http, job_id) if e["type"] == "job.status"]
        assert [e["data"]["state"] for e in statuses] == ["running"]
        assert len(set(transport.keys)) == 1 and transport.keys[0]


def test_an_idempotency_key_answers_its_first_seqs_and_refuses_other_events(
    database_url: str, tmp_path: Path
) -> None:
    app = create_jobs_app(database_url, artifacts_dir=tmp_path / "files", settings=EVERY_EVENT)
    with serve_in_background(app) as url, httpx.Client(base_url=url, headers=HEADERS) as http:
        job_id = http.post("/api/jobs", json={"kind": "custom"}).json()["job_id"]
        path = f"/api/jobs/{job_id}/events"
        body = {"events": [{"type": "system.log", "message": m, "ts": 1.0} for m in "ab"]}
        once = {"idempotency-key": "batch-1"}
        first = http.post(path, json=body, headers=once)
        again = http.post(path, json=body, headers=once)
        assert first.status_code == again.status_code == 201
        assert first.json()["seqs"] == again.json()["seqs"] == [1, 2]
        other = http.post(path, json={"type": "system.log", "message": "c"}, headers=once)
        assert other.status_code == 409
        assert other.json()["detail"]["error"]["code"] == "idempotency_key_reused"
        bad = http.post(path, json=body, headers={"idempotency-key": "x" * 256})
        assert bad.status_code == 422
        later = http.post(path, json={"type": "system.log"}, headers={"idempotency-key": "2"})
        assert later.json()["seqs"] == [3]
        assert [e["seq"] for e in stored(http, job_id)] == [1, 2, 3]


@pytest.mark.parametrize("round_", range(5))
def test_one_key_posted_to_two_replicas_at_once_is_stored_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, round_: int
) -> None:
    """Both replicas' appends wait on the job's row; released, the second to commit sees the
    first's key and answers its seqs."""
    monkeypatch.setenv("SYNTH_PG_LOCK_TIMEOUT_SECS", "60")

    async def scenario() -> None:
        one, two = JobsService(postgres_url, EVERY_EVENT), JobsService(postgres_url, EVERY_EVENT)
        try:
            job_id = (await one.create("custom", {}, {}))["job_id"]
            events = [line("a"), line("b")]
            with row_locked(postgres_url, job_id):
                first = asyncio.create_task(one.emit(job_id, events, "k"))
                second = asyncio.create_task(two.emit(job_id, events, "k"))
                await asyncio.to_thread(waiting_on_locks, postgres_url, 2)
            a, b = await asyncio.gather(first, second)
            assert [e.seq for e in a] == [e.seq for e in b] == [1, 2]
            assert [e.seq for e in one.log.events(job_id)] == [1, 2]
            with pytest.raises(KeyReused):
                await two.emit(job_id, [line("other")], "k")
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


def waiting_on_locks(url: str, count: int) -> None:
    """Until `count` sessions of the database wait for a lock (the point the test wants)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100_000):
            (waiting,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone() or (0,)
            if waiting >= count:
                return
    raise AssertionError(f"{count} sessions never waited for a lock")


# --- #8: timeouts on PostgreSQL --------------------------------------------------------------


def test_a_row_lock_held_elsewhere_fails_that_jobs_appends_within_the_timeout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transaction holds one job's row: that job's appends fail (nothing stored, a
    clear reason) within the lock timeout, the other job's are stored, and once the lock goes
    the writer stores that job's appends again."""
    monkeypatch.setenv("SYNTH_PG_LOCK_TIMEOUT_SECS", "0.3")

    async def scenario() -> None:
        service = JobsService(postgres_url, EVERY_EVENT)
        try:
            a = (await service.create("custom", {}, {}))["job_id"]
            b = (await service.create("custom", {}, {}))["job_id"]
            with row_locked(postgres_url, a):
                async with asyncio.timeout(20):
                    outcomes = await asyncio.gather(
                        *(service.emit(a, [line(f"a{n}")]) for n in range(3)),
                        service.emit(b, [line("b")]),
                        return_exceptions=True,
                    )
            *locked, other = outcomes
            assert all(isinstance(o, LogFailed) and "lock" in str(o) for o in locked), locked
            assert isinstance(other, list) and [e.seq for e in other] == [1]
            assert [e.seq for e in await service.emit(a, [line("after")])] == [1]
        finally:
            await service.close()

    asyncio.run(scenario())


def test_a_peer_stuck_inside_a_transaction_loses_its_locks(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that stopped mid-transaction (its connection open, idle) holds a job's row:
    the server ends its session after the idle timeout, and this replica's append goes in."""
    monkeypatch.setenv("SYNTH_PG_IDLE_IN_TRANSACTION_SECS", "0.5")
    monkeypatch.setenv("SYNTH_PG_LOCK_TIMEOUT_SECS", "30")

    async def scenario() -> None:
        service = JobsService(postgres_url, EVERY_EVENT)
        peer = open_database(postgres_url).connect()
        try:
            job_id = (await service.create("custom", {}, {}))["job_id"]
            peer.begin()
            peer.query("SELECT 1 FROM jobs WHERE job_id = ? FOR UPDATE", [job_id])
            async with asyncio.timeout(20):
                assert [e.seq for e in await service.emit(job_id, [line("in")])] == [1]
        finally:
            peer.close()
            await service.close()

    asyncio.run(scenario())


def test_every_postgres_connection_carries_the_timeouts(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_PG_LOCK_TIMEOUT_SECS", "1.5")
    database = open_database(f"{postgres_url}?options=-c%20application_name%3Dmine")
    names = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
    query = "SELECT " + ", ".join(f"current_setting('{n}') AS {n}" for n in names)
    try:
        dedicated = database.connect()
        try:
            (row,) = dedicated.query(query + ", current_setting('application_name') AS app")
        finally:
            dedicated.close()
        with database.reading() as pooled:
            (pooled_row,) = pooled.query(query)
    finally:
        database.close()
    assert row == {**pooled_row, "app": "mine"}
    assert pooled_row == {
        "lock_timeout": "1500ms",
        "statement_timeout": "30s",
        "idle_in_transaction_session_timeout": "1min",
    }


# --- #10: a replay page the log fails to read ------------------------------------------------


def test_a_replay_page_the_log_fails_to_read_ends_the_stream_with_reset(
    database_url: str, tmp_path: Path
) -> None:
    """The ring no longer reaches back, so the stream pages through the log, whose table is
    gone: on either engine the stream says `reset` (resume later) and ends."""
    settings = StreamSettings(ring_events=1, max_metric_hz=0, end_grace_s=0.05)
    app = create_jobs_app(database_url, artifacts_dir=tmp_path / "files", settings=settings)
    with serve_in_background(app) as url, httpx.Client(base_url=url, headers=HEADERS) as http:
        job_id = http.post("/api/jobs", json={"kind": "custom"}).json()["job_id"]
        for n in range(3):
            http.post(f"/api/jobs/{job_id}/events", json={"type": "system.log", "message": f"{n}"})
        database = open_database(database_url)
        breaker = database.connect()
        try:
            breaker.execute("ALTER TABLE job_events RENAME TO job_events_away")
        finally:
            breaker.close()
            database.close()
        with http.stream(
            "GET", f"/api/jobs/{job_id}/stream", params={"since_id": 0}, timeout=30
        ) as response:
            assert response.status_code == 200
            body = response.read().decode()
    assert "event: reset" in body and '"last_seq":3' in body.replace(" ", "")
