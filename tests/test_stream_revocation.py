"""A stream already open ends when what opened it ends: sign-out ends the streams of its session's
tokens, and a key rotated away ends the streams opened with it (directly or through a token it
got), within a heartbeat, idle or busy; other streams run on. Real servers on SQLite and
PostgreSQL (two apps on one store)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from synth_ai.jobs import JobsService, StreamSettings, create_jobs_app
from synth_ai.jobs.frames import stream_frames
from synth_ai.storage import StorageError
from synth_ai.task import serve_in_background

from .conftest import KEY
from .test_sessions import ACME, ACME_NEW, Browser, as_

HEARTBEAT = 0.3
BOUND_S = 15.0
"""How long a revoked stream may take to end: it ends within a heartbeat or two (0.3 s each);
the rest is room for a loaded machine, as a stream that is never ended fails all the same."""


@pytest.fixture
def replicas(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", f"acme:{ACME}")
    settings = StreamSettings(end_grace_s=0.05)
    with ExitStack() as stack:
        yield tuple(  # type: ignore[misc]
            stack.enter_context(
                serve_in_background(create_jobs_app(database_url, settings=settings))
            )
            for _ in range(2)
        )


def running_job(url: str, key: str) -> str:
    job_id = httpx.post(f"{url}/api/jobs", json={}, headers=as_(key)).json()["job_id"]
    running = {"type": "job.status", "data": {"state": "running"}}
    assert httpx.post(f"{url}/api/jobs/{job_id}/events", json=running, headers=as_(key)).is_success
    return job_id


class Follower:
    """One open stream, read in the background: its frames in order, and whether it ended."""

    def __init__(self, url: str, job_id: str, *, token: str = "", key: str = "") -> None:
        params: dict[str, Any] = {"heartbeat": HEARTBEAT}
        if token:
            params["token"] = token
        self.client = httpx.AsyncClient(
            base_url=url, headers=as_(key) if key else {}, timeout=httpx.Timeout(10, read=None)
        )
        self.path, self.params = f"/api/jobs/{job_id}/stream", params
        self.frames: list[tuple[str, str]] = []
        self.keep_alives = 0
        self.opened = asyncio.Event()
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async with aconnect_sse(self.client, "GET", self.path, params=self.params) as source:
                assert source.response.status_code == 200
                self.opened.set()
                async for sse in source.aiter_sse():
                    if sse.data:
                        self.frames.append((sse.event, sse.data))
                    else:
                        self.keep_alives += 1
                    self.changed.set()
        finally:
            self.changed.set()
            await self.client.aclose()

    async def ended(self) -> float:
        """Seconds until the stream closed (fails the test past BOUND_S)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(BOUND_S):
            await self.task
        return loop.time() - started

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait (at most BOUND_S) until `done()` holds, checked at every frame."""
        async with asyncio.timeout(BOUND_S):
            while not done():
                assert not self.task.done(), self.frames[-3:]
                self.changed.clear()
                await self.changed.wait()

    async def beats(self, count: int) -> None:
        """Wait until `count` more keep-alives came: the stream is still open."""
        target = self.keep_alives + count
        await self.until(lambda: self.keep_alives >= target)

    def revoked(self) -> dict[str, Any]:
        name, data = self.frames[-1]
        assert name == "revoked", self.frames[-3:]
        return json.loads(data)


async def opened(*followers: Follower) -> None:
    async with asyncio.timeout(BOUND_S):
        for follower in followers:
            await follower.opened.wait()


def test_signing_out_ends_the_open_streams_of_its_session_tokens(
    replicas: tuple[str, str],
) -> None:
    a, b = replicas
    job_id = running_job(a, KEY)
    leaving, staying = Browser(a, KEY), Browser(a, KEY)
    mine = leaving.post(f"/api/jobs/{job_id}/stream-token").json()["token"]
    theirs = staying.post(f"/api/jobs/{job_id}/stream-token").json()["token"]

    async def scenario() -> None:
        followers = [Follower(url, job_id, token=mine) for url in (a, b)]
        other = Follower(b, job_id, token=theirs)
        await opened(*followers, other)
        await other.beats(1)
        leaving.url = b  # signed out at one replica, ended at both
        assert leaving.post("/ui/api/signout").status_code == 204
        for follower in followers:
            await follower.ended()
            assert follower.revoked()["code"] == "unauthorised"
        await other.beats(2)  # another session's stream runs on
        other.task.cancel()

    asyncio.run(scenario())


def test_a_rotated_key_ends_the_streams_opened_with_it(
    replicas: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    job_id = running_job(a, ACME)
    token = httpx.post(f"{a}/api/jobs/{job_id}/stream-token", headers=as_(ACME)).json()["token"]

    async def scenario() -> None:
        by_key, by_token = Follower(a, job_id, key=ACME), Follower(b, job_id, token=token)
        operator = Follower(b, job_id, key=KEY)
        await opened(by_key, by_token, operator)
        monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", f"acme:{ACME_NEW}")
        for follower in (by_key, by_token):
            await follower.ended()
            assert follower.revoked()["code"] == "unauthorised"
        await operator.beats(2)  # the operator's key did not change
        operator.task.cancel()

    asyncio.run(scenario())


def test_a_busy_stream_ends_too_and_misses_nothing_before(replicas: tuple[str, str]) -> None:
    """Events keep the stream from ever idling to a keep-alive: it is checked all the same."""
    a, b = replicas
    job_id = running_job(a, KEY)
    browser = Browser(a, KEY)
    token = browser.post(f"/api/jobs/{job_id}/stream-token").json()["token"]

    async def scenario() -> tuple[Follower, list[int]]:
        follower = Follower(b, job_id, token=token)
        await opened(follower)
        acknowledged: list[int] = []
        stop = asyncio.Event()

        async def produce() -> None:
            async with httpx.AsyncClient(base_url=b, headers=as_(KEY)) as client:
                n = 0
                while not stop.is_set():
                    line = {"type": "system.log", "message": f"line {n}"}
                    answer = await client.post(f"/api/jobs/{job_id}/events", json=line)
                    assert answer.status_code == 201, answer.text
                    acknowledged.extend(answer.json()["seqs"])
                    n += 1

        producer = asyncio.create_task(produce())
        await follower.until(lambda: len(follower.frames) >= 20)  # the stream is busy
        assert browser.post("/ui/api/signout").status_code == 204
        await follower.ended()
        stop.set()
        await producer
        return follower, acknowledged

    follower, acknowledged = asyncio.run(scenario())
    follower.revoked()
    seqs = [json.loads(data)["seq"] for name, data in follower.frames if name == "log"]
    assert seqs == acknowledged[: len(seqs)]  # in order, nothing skipped, up to the end


@pytest.mark.parametrize("failure", [StorageError("the sessions table is gone"), TimeoutError()])
def test_a_grant_that_cannot_be_checked_ends_the_stream_with_reset(
    failure: Exception, tmp_path: Path
) -> None:
    """Neither kept open unchecked nor called revoked: `reset`, so the client resumes from its
    cursor and is checked again when it opens."""

    async def scenario() -> list[bytes]:
        service = JobsService(tmp_path / "jobs.db", StreamSettings(replay_timeout_s=0.2))
        try:
            job_id = (await service.create("custom", {}, {}))["job_id"]
            bus = await service.bus(job_id)
            assert bus is not None

            async def unanswerable() -> bool:
                raise failure

            frames = stream_frames(
                service, bus, bus.subscribe(None), 0, None, HEARTBEAT, unanswerable
            )
            async with asyncio.timeout(BOUND_S):
                return [frame async for frame in frames]
        finally:
            await service.close()

    *_, last = asyncio.run(scenario())
    assert last.startswith(b"event: reset\n"), last
