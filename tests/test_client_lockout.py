"""A 429 `too_many_failed_attempts` (this address sent too many wrong keys) is final for the
clients: raised at once with a message saying to check the key, never waited out and sent
again, whatever the request (a read, a rollout, a job stream, `request_within`, a remote
emitter's posts).

Real servers on loopback; each counts the requests that reach it, so "not sent again" is
measured, not assumed. The servers' failed-check limit is set to 1 so one wrong key locks
the address out (the limit itself has its own tests in test_auth_guessing)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from synth_ai.jobs import RemoteEmitter, RemoteEmitterError, create_jobs_app
from synth_ai.jobs.client import JobStreamError, request_within, stream_job
from synth_ai.task import (
    SyncTaskAppClient,
    TaskAppClient,
    TaskAppClientError,
    create_task_app,
    serve_in_background,
)
from synth_ai.task.attempts import FailedAttempts

from .conftest import KEY, make_config, rollout_body


class Counted:
    """The app, counting the HTTP requests that reach it."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


@contextmanager
def locked_out(app: Starlette, path: str) -> Iterator[tuple[str, Counted]]:
    """The app served, with this address (127.0.0.1) locked out by one wrong key."""
    app.state.failed_attempts = FailedAttempts(limit=1)
    counted = Counted(app)
    with serve_in_background(counted) as url:
        wrong = httpx.get(f"{url}{path}", headers={"X-API-Key": "not-the-key"}, timeout=30)
        assert wrong.status_code == 401, wrong.text
        counted.requests = 0
        yield url, counted


class Paused(TaskAppClient):
    """Records each backoff instead of sleeping it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pauses: list[float] = []

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


def assert_final(exc: TaskAppClientError | JobStreamError | RemoteEmitterError) -> None:
    assert exc.status == 429
    assert exc.code == "too_many_failed_attempts"
    assert "check the API key" in exc.message
    assert KEY not in str(exc)


@pytest.mark.parametrize("call", ["health", "rollout", "create_job"])
def test_the_task_client_raises_a_lockout_at_once(call: str, tmp_path: Path) -> None:
    app = create_task_app(make_config()) if call != "create_job" else None
    app = app or create_jobs_app(tmp_path / "jobs.db")
    path = "/api/jobs" if call == "create_job" else "/info"

    async def scenario(url: str) -> TaskAppClientError:
        async with Paused(url, KEY, max_retries=3) as client:
            with pytest.raises(TaskAppClientError) as refused:
                if call == "health":
                    await client.request("GET", "/info")
                elif call == "rollout":
                    await client.rollout(rollout_body())
                else:
                    await client.create_job("custom", {})
            assert client.pauses == []
            return refused.value

    with locked_out(app, path) as (url, counted):
        assert_final(asyncio.run(scenario(url)))
        assert counted.requests == 1


def test_the_sync_client_raises_a_lockout_at_once() -> None:
    with locked_out(create_task_app(make_config()), "/info") as (url, counted):
        client = SyncTaskAppClient(url, KEY, max_retries=3, backoff_s=10.0)
        with client, pytest.raises(TaskAppClientError) as refused:
            client.rollout(rollout_body())
        assert_final(refused.value)
        assert counted.requests == 1


def test_a_job_stream_raises_a_lockout_at_once(tmp_path: Path) -> None:
    async def scenario(url: str) -> JobStreamError:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}) as http:
            with pytest.raises(JobStreamError) as refused:
                async for _ in stream_job(http, "job_x", retry_for_s=5.0, backoff_s=0.01):
                    pass
            return refused.value

    with locked_out(create_jobs_app(tmp_path / "jobs.db"), "/api/jobs") as (url, counted):
        assert_final(asyncio.run(scenario(url)))
        assert counted.requests == 1


def test_request_within_raises_a_lockout_at_once(tmp_path: Path) -> None:
    async def scenario(url: str) -> TaskAppClientError:
        async with TaskAppClient(url, KEY, max_retries=0) as client:
            with pytest.raises(TaskAppClientError) as refused:
                await request_within(client, "GET", "/api/jobs", retry_for_s=3.0, backoff_s=0.01)
            return refused.value

    with locked_out(create_jobs_app(tmp_path / "jobs.db"), "/api/jobs") as (url, counted):
        assert_final(asyncio.run(scenario(url)))
        assert counted.requests == 1


def test_a_remote_emitter_stops_at_a_lockout(tmp_path: Path) -> None:
    app = create_jobs_app(tmp_path / "jobs.db")
    with locked_out(app, "/api/jobs") as (url, counted):
        emitter = RemoteEmitter(url, "job_x", KEY, backoff_s=0.01, max_backoff_s=0.02)
        emitter.emit_log("hello")
        with pytest.raises(RemoteEmitterError) as refused:
            emitter.close(timeout_s=5.0)
        assert_final(refused.value)
        assert counted.requests == 1
        with pytest.raises(RemoteEmitterError) as creating:
            RemoteEmitter.create_job(url, KEY, attempts=5)
        assert_final(creating.value)
        assert counted.requests == 2
