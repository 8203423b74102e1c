"""Faults of the job log that once took other callers down with them: an event that cannot be
encoded (issue 26 #4), work submitted around `close()` (#11) and an eval job whose start failed
(#9); and the log's idempotency keys (#7) under any order of retries. Races are driven through
the log's named delay point (`delay_point`), never by sleeping.
"""

from __future__ import annotations

import array
import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.batch_writer import WriterUnavailable
from synth_ai.eval import EvalJobKind
from synth_ai.jobs import EventIn, JobEmitter, JobsService, StreamSettings, create_jobs_app
from synth_ai.jobs.log import JobEventLog
from synth_ai.task import create_task_app, serve_in_background

from .conftest import KEY, echo_rollout, make_config

HEADERS = {"X-API-Key": KEY}
EVERY_EVENT = StreamSettings(max_metric_hz=0, end_grace_s=0.05)


class Gate:
    """A delay point's hook: the first time the writer reaches `name` it says so (`reached`)
    and waits there until the test `opens` it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reached = threading.Event()
        self.opened = threading.Event()

    def __call__(self, name: str) -> None:
        if name == self.name and not self.reached.is_set():
            self.reached.set()
            self.opened.wait(30)


def line(text: str) -> EventIn:
    return EventIn(type="system.log", message=text)


# --- #4: an event that cannot be encoded -----------------------------------------------------


def test_an_unencodable_event_fails_its_own_caller_not_the_batch(tmp_path: Path) -> None:
    """Held at the delay point, the writer's next batch would hold both jobs' appends: the one
    with a datetime in its data is refused at once, and the other job's append is stored."""

    async def scenario() -> None:
        service = JobsService(tmp_path / "jobs.db", EVERY_EVENT)
        try:
            a = (await service.create("custom", {}, {}))["job_id"]
            b = (await service.create("custom", {}, {}))["job_id"]
            gate = service.log.delay_point = Gate("batch")
            held = asyncio.create_task(service.emit(a, [line("first")]))
            await asyncio.to_thread(gate.reached.wait, 10)
            good = asyncio.create_task(service.emit(a, [line("second")]))
            when = datetime(2026, 1, 2, tzinfo=UTC)
            bad = asyncio.create_task(
                service.emit(b, [EventIn(type="system.log", data={"at": when})])
            )
            await asyncio.wait({good, bad}, timeout=0)  # both ran up to their wait
            gate.opened.set()
            with pytest.raises((TypeError, ValueError), match="not JSON"):
                await bad
            assert [e.seq for e in await good] == [2]
            assert [e.seq for e in await held] == [1]
            assert service.log.write_errors == 0
            assert [e.message for e in service.log.events(a)] == ["first", "second"]
            assert service.log.events(b) == []
        finally:
            await service.close()

    asyncio.run(scenario())


def test_job_emitter_stores_datetimes_and_array_numbers_as_json(tmp_path: Path) -> None:
    """The in-process emitter converts what training code has at hand; what has no JSON form
    is a `TypeError` at the emit that passed it."""

    async def scenario() -> None:
        service = JobsService(tmp_path / "jobs.db", EVERY_EVENT)
        try:
            job_id = (await service.create("custom", {}, {}))["job_id"]
            emitter = JobEmitter(service, job_id)
            when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
            emitter.emit_metric("loss", 0.5, at=when, values=array.array("d", [1.5, 2.5]))
            stored = await emitter.emit_committed("system.log", data={"day": date(2026, 1, 2)})
            assert stored.data == {"day": "2026-01-02"}
            with pytest.raises(TypeError, match="not JSON"):
                emitter.emit("system.log", data={"thing": object()})
            with pytest.raises(TypeError, match="not JSON"):
                await emitter.emit_committed("system.log", data={"thing": object()})
            assert service.log.flush(10)
            metric, log = service.log.events(job_id)
            assert metric.data["at"] == "2026-01-02T03:04:05Z"
            assert metric.data["values"] == [1.5, 2.5]
            assert log.seq == stored.seq and service.log.write_errors == 0
        finally:
            await service.close()

    asyncio.run(scenario())


@pytest.fixture
def jobs_url(tmp_path: Path) -> Iterator[str]:
    app = create_jobs_app(tmp_path / "jobs.db", settings=EVERY_EVENT)
    with serve_in_background(app) as url:
        yield url


def test_a_posted_event_too_deep_to_encode_is_a_422_and_nothing_else_fails(
    jobs_url: str,
) -> None:
    """Nesting that JSON parsing accepts but encoding cannot follow is the poster's 4xx."""
    with httpx.Client(base_url=jobs_url, headers=HEADERS, timeout=30) as http:
        job_id = http.post("/api/jobs", json={"kind": "custom"}).json()["job_id"]
        depth = 600
        body = '{"type": "system.log", "data": {"deep": ' + "[" * depth + "]" * depth + "}}"
        refused = http.post(
            f"/api/jobs/{job_id}/events",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"]["error"]["code"] == "invalid_request"
        kept = http.post(f"/api/jobs/{job_id}/events", json={"type": "system.log"})
        assert kept.status_code == 201 and kept.json()["seqs"] == [1]
        assert http.get("/").json()["log_write_errors"] == 0


# --- #11: work around close() ----------------------------------------------------------------


def test_appends_after_close_fail_at_once(tmp_path: Path) -> None:
    log = JobEventLog(tmp_path / "jobs.db")
    log.create_job("job_a", "custom", {}, {})
    log.close()

    async def append() -> None:
        async with asyncio.timeout(10):
            await log.append("job_a", [line("late")])

    with pytest.raises(WriterUnavailable, match="closed"):
        asyncio.run(append())
    with pytest.raises(WriterUnavailable, match="closed"):
        log.append_nowait("job_a", [line("late")])


def test_close_answers_every_queued_append_even_with_the_writer_stuck(tmp_path: Path) -> None:
    """The writer is held in a batch past close's timeout: what waits behind it is answered
    `WriterUnavailable` at close, not left pending; the batch in hand still commits."""
    log = JobEventLog(tmp_path / "jobs.db")
    log.create_job("job_a", "custom", {}, {})
    gate = log.delay_point = Gate("batch")

    async def scenario() -> None:
        held = asyncio.create_task(log.append("job_a", [line("held")]))
        await asyncio.to_thread(gate.reached.wait, 10)
        queued = [asyncio.create_task(log.append("job_a", [line(f"q{n}")])) for n in range(5)]
        await asyncio.wait(queued, timeout=0)  # each is queued and waiting
        await asyncio.to_thread(log.close, 0.2)
        done, pending = await asyncio.wait(queued, timeout=10)
        assert not pending
        for task in done:
            with pytest.raises(WriterUnavailable, match="closed"):
                task.result()
        gate.opened.set()
        assert [e.seq for e in await held] == [1]

    asyncio.run(scenario())
    assert log.write_errors == 5


# --- #9: an eval job whose start fails --------------------------------------------------------


def lease_of(db: Path, job_id: str) -> tuple[Any, ...]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT state, lease_owner, lease_expires_at FROM jobs WHERE job_id = ?", [job_id]
        ).fetchone()
    return tuple(row)


def test_an_eval_job_whose_start_fails_ends_failed_and_lets_go_of_its_lease(
    tmp_path: Path,
) -> None:
    """The results folder cannot be made (the artifacts root is a file): the job is failed,
    saying why, its lease cleared, and this server no longer renews it."""
    blocked = tmp_path / "artifacts"
    blocked.write_text("not a folder")
    db = tmp_path / "jobs.db"
    app = create_jobs_app(
        db, artifacts_dir=blocked, settings=EVERY_EVENT, kinds={"eval": EvalJobKind()}
    )
    task_app = create_task_app(make_config(rollout=echo_rollout))
    with (
        serve_in_background(task_app) as task_app_url,
        serve_in_background(app) as url,
        httpx.Client(base_url=url, headers=HEADERS) as http,
    ):
        config = {  # an app that passes the preflight, made before the job
            "task_app_url": task_app_url,
            "api_key": KEY,
            "seeds": [0],
            "model": "offline-policy",
            "inference_url": "http://127.0.0.1:9/v1",
        }
        created = http.post("/api/jobs", json={"kind": "eval", "config": config})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        service: JobsService = app.state.jobs
        assert job_id not in service.leases.held
        state, owner, expires_at = lease_of(db, job_id)
        assert (state, owner, expires_at) == ("failed", None, None)
        events = http.get(f"/api/jobs/{job_id}/events").json()["events"]
        assert events[-1]["data"]["state"] == "failed"
        assert "did not start" in events[-1]["message"]
        assert str(tmp_path) not in events[-1]["message"]  # the server's paths stay its own


# --- idempotency keys, whatever the order of retries ------------------------------------------


@settings(max_examples=25, deadline=None)
@given(keys=st.lists(st.integers(0, 4), min_size=1, max_size=10))
def test_posts_with_repeated_keys_store_each_key_once(
    tmp_path_factory: pytest.TempPathFactory, keys: list[int]
) -> None:
    """Each key's events are stored at its first post; every later post with it is answered
    the same seqs, and the log holds each key's events once, in first-post order."""
    log = JobEventLog(tmp_path_factory.mktemp("keys") / "jobs.db")
    log.create_job("job_a", "custom", {}, {})

    async def post_all() -> dict[int, list[int]]:
        answered: dict[int, list[int]] = {}
        for key in keys:
            events = [line(f"{key}.{n}") for n in range(key % 3 + 1)]
            seqs = [e.seq for e in await log.append("job_a", events, key=f"k{key}")]
            assert seqs == answered.setdefault(key, seqs)
        return answered

    try:
        answered = asyncio.run(post_all())
        first_posts = list(dict.fromkeys(keys))
        stored = log.events("job_a", limit=1000)
        assert [e.message for e in stored] == [
            f"{key}.{n}" for key in first_posts for n in range(key % 3 + 1)
        ]
        assert [seq for key in first_posts for seq in answered[key]] == [e.seq for e in stored]
    finally:
        log.close()
