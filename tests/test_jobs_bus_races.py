"""Races of the job bus, driven through real servers and the service's named delay points.

`JobsService.delay_point` is awaited where a bus is opened (`open`), where its job has been read
(`load`) and before each read of the log ahead (`catch_up`). `Points` holds the n-th arrival at
a point until the test releases it (or fails it, as a database read can), so each race is
played out in the order that breaks, every time, with no sleeps. Each runs many rounds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from starlette.applications import Starlette

from synth_ai.jobs import JobsService, StreamSettings, create_jobs_app
from synth_ai.jobs.models import EventIn
from synth_ai.jobs.server_runs import Run, ServerRuns
from synth_ai.task import serve_in_background

from .conftest import KEY

HEADERS = {"X-API-Key": KEY}
TENANT_KEY = "tnqzvwxjmnkqzvwxjmnTNT"
ROUNDS = 10
FAST = StreamSettings(end_grace_s=0.05, heartbeat_s=0.2)


class Points:
    """A `delay_point` for one service (called on its loop): counts arrivals per point and job;
    the arrivals named in `holds` wait for their event, those in `fails` raise."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived: Counter[tuple[str, str]] = Counter()
        self._reached: dict[tuple[str, str, int], threading.Event] = {}
        self.holds: dict[tuple[str, str, int], threading.Event] = {}
        self.fails: set[tuple[str, str, int]] = set()

    def reached(self, point: str, job_id: str, n: int = 1) -> threading.Event:
        """Set once the n-th caller has come to `point` for `job_id`."""
        with self._lock:
            return self._reached.setdefault((point, job_id, n), threading.Event())

    def hold(self, point: str, job_id: str, n: int = 1) -> threading.Event:
        """Hold the n-th caller at `point` until the answered event is set."""
        release = self.holds[(point, job_id, n)] = threading.Event()
        return release

    async def __call__(self, point: str, job_id: str) -> None:
        with self._lock:
            self._arrived[(point, job_id)] += 1
            key = (point, job_id, self._arrived[(point, job_id)])
        self.reached(*key).set()
        release = self.holds.get(key)
        if release is not None:
            assert await asyncio.to_thread(release.wait, 30), f"{key} never released"
        if key in self.fails:
            raise OSError(f"injected failure at {key}")


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10), "a delay point was never reached"


def new_job(url: str, key: str = KEY) -> str:
    answer = httpx.post(f"{url}/api/jobs", json={"kind": "custom"}, headers={"X-API-Key": key})
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["job_id"]
    return job_id


def post(url: str, job_id: str, *events: dict[str, Any], key: str = KEY) -> list[int]:
    answer = httpx.post(
        f"{url}/api/jobs/{job_id}/events", json={"events": list(events)}, headers={"X-API-Key": key}
    )
    assert answer.status_code == 201, answer.text
    seqs: list[int] = answer.json()["seqs"]
    return seqs


def logs(count: int) -> list[dict[str, Any]]:
    return [{"type": "system.log", "message": f"line {i}"} for i in range(count)]


DONE = {"type": "job.status", "data": {"state": "succeeded"}}


async def follow(
    url: str, job_id: str, opened: asyncio.Event | None = None, **headers: str
) -> list[int]:
    """The ids a stream delivers until its `end`."""
    ids: list[int] = []
    async with (
        httpx.AsyncClient(base_url=url, headers={**HEADERS, **headers}, timeout=30) as client,
        aconnect_sse(client, "GET", f"/api/jobs/{job_id}/stream") as source,
    ):
        assert source.response.status_code == 200
        if opened is not None:
            opened.set()
        async for sse in source.aiter_sse():
            if sse.event == "end":
                return ids
            if sse.id and sse.data:
                ids.append(int(sse.id))
    raise AssertionError(f"the stream of {job_id} stopped without `end` after {ids}")


def service_of(app: Starlette) -> JobsService:
    service: JobsService = app.state.jobs
    return service


# --- 1: readers opening a cold job at once ------------------------------------------------------


def test_readers_opening_a_cold_job_at_once_share_one_load(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart six readers and the owner's post open one job together; the first load
    is held until all seven have asked. Every reader gets every event and its end; the owner's
    post is stored (a blank bus once answered them nothing, and the tenant's post 404)."""
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", f"acme:{TENANT_KEY}")
    with serve_in_background(create_jobs_app(database_url, settings=FAST)) as url:
        jobs = [new_job(url, TENANT_KEY) for _ in range(ROUNDS)]
        for job_id in jobs:
            post(url, job_id, *logs(5), key=TENANT_KEY)
    app = create_jobs_app(database_url, settings=FAST)
    points = service_of(app).delay_point = Points()
    with serve_in_background(app) as url:
        for job_id in jobs:
            release = points.hold("load", job_id)

            async def scenario(job_id: str = job_id, release: threading.Event = release) -> None:
                readers = [asyncio.create_task(follow(url, job_id)) for _ in range(6)]
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    posting = asyncio.create_task(
                        client.post(
                            f"/api/jobs/{job_id}/events",
                            json=DONE,
                            headers={"X-API-Key": TENANT_KEY},
                        )
                    )
                    await wait_for(points.reached("open", job_id, 7))
                    release.set()
                    async with asyncio.timeout(10):
                        answer = await posting
                        streams = await asyncio.gather(*readers)
                assert answer.status_code == 201, answer.text
                assert streams == [[1, 2, 3, 4, 5, 6]] * 6
                assert not points.reached("load", job_id, 2).is_set()  # one load for all seven

            asyncio.run(scenario())


def test_a_failed_load_fails_everyone_sharing_it_and_is_not_kept(tmp_path: Path) -> None:
    """Three callers share a load whose read fails: each is answered the failure, and the next
    caller loads afresh."""
    with serve_in_background(create_jobs_app(tmp_path / "j.db", settings=FAST)) as url:
        jobs = [new_job(url) for _ in range(ROUNDS)]
    app = create_jobs_app(tmp_path / "j.db", settings=FAST)
    points = service_of(app).delay_point = Points()
    with serve_in_background(app) as url:
        for job_id in jobs:
            release = points.hold("load", job_id)
            points.fails.add(("load", job_id, 1))

            async def scenario(job_id: str = job_id, release: threading.Event = release) -> None:
                async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
                    asking = [
                        asyncio.create_task(client.get(f"/api/jobs/{job_id}")) for _ in range(3)
                    ]
                    await wait_for(points.reached("open", job_id, 3))
                    release.set()
                    # an unexpected error: a 500, or the connection closed by the server
                    for answer in await asyncio.gather(*asking, return_exceptions=True):
                        assert isinstance(answer, httpx.TransportError) or (
                            isinstance(answer, httpx.Response) and answer.status_code == 500
                        ), answer
                again = await asyncio.to_thread(
                    httpx.get, f"{url}/api/jobs/{job_id}", headers=HEADERS
                )
                assert again.status_code == 200  # on a new connection: the server closed those
                assert points.reached("load", job_id, 2).is_set()

            asyncio.run(scenario())


# --- 2: a bus loaded for a stream is not evicted under it ---------------------------------------


def test_a_bus_loaded_for_a_new_stream_stays_hot_and_counted(tmp_path: Path) -> None:
    """One hot job allowed: with a stream on K, a stream on J loads J's bus. It must stay (a
    stream is joining it), hear J's events, and count against `SSE_MAX_CLIENTS`."""
    settings_ = StreamSettings(end_grace_s=0.05, heartbeat_s=0.2, max_buses=1, max_clients=2)
    with serve_in_background(create_jobs_app(tmp_path / "j.db", settings=settings_)) as url:
        for _ in range(ROUNDS):
            k, j = new_job(url), new_job(url)  # J is the hot one: K's bus was evicted

            async def scenario(k: str = k, j: str = j) -> None:
                opened_k, opened_j = asyncio.Event(), asyncio.Event()
                on_k = asyncio.create_task(follow(url, k, opened_k))
                await opened_k.wait()
                on_j = asyncio.create_task(follow(url, j, opened_j))
                await opened_j.wait()
                async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
                    async with client.stream("GET", f"/api/jobs/{k}/stream") as third:
                        assert third.status_code == 429, "a stream went uncounted"
                    assert (await client.get(f"/api/jobs/{j}")).json()["streams"] == 1
                    for job_id in (j, k):
                        stored = await client.post(f"/api/jobs/{job_id}/events", json=DONE)
                        assert stored.status_code == 201
                async with asyncio.timeout(10):
                    assert await on_j == [1]
                    assert await on_k == [1]

            asyncio.run(scenario())


# --- 5 and 6: catching up on a replica -----------------------------------------------------------


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[str, str, Points, JobsService]]:
    """Two servers on one PostgreSQL database: A takes the posts, B (with delay points) the
    streams; B keeps one job hot."""
    writer = create_jobs_app(postgres_url, settings=FAST)
    reader = create_jobs_app(
        postgres_url, settings=StreamSettings(end_grace_s=0.05, heartbeat_s=0.2, max_buses=1)
    )
    points = service_of(reader).delay_point = Points()
    with serve_in_background(writer) as a, serve_in_background(reader) as b:
        yield a, b, points, service_of(reader)


def test_a_failed_catch_up_read_on_a_replica_is_tried_again(
    replicas: tuple[str, str, Points, JobsService],
) -> None:
    """B reads the job while A stores its events and end; B's read of them then fails once.
    B must read again: its stream delivers them and ends (it once kept sending keep-alives)."""
    a, b, points, _ = replicas
    for _ in range(ROUNDS):
        job_id = new_job(a)
        release = points.hold("load", job_id)
        points.fails.add(("catch_up", job_id, 1))

        async def scenario(job_id: str = job_id, release: threading.Event = release) -> None:
            reader = asyncio.create_task(follow(b, job_id))
            await wait_for(points.reached("load", job_id))
            await asyncio.to_thread(post, a, job_id, *logs(3), DONE)  # B has read none of it
            release.set()
            async with asyncio.timeout(10):
                assert await reader == [1, 2, 3, 4]
            assert points.reached("catch_up", job_id, 2).is_set()  # it was read again

        asyncio.run(scenario())


def test_a_bus_reloaded_during_a_catch_up_read_catches_up(
    replicas: tuple[str, str, Points, JobsService],
) -> None:
    """B's read ahead for J's first bus is held; J's bus is evicted (K loaded) and loaded again,
    and A stores J's end while that load is held. Once both go on, J's new bus must reach the
    log's end (it once stayed behind: its catch-up had been folded into the stale read)."""
    a, b, points, service = replicas
    for _ in range(ROUNDS):
        j, k = new_job(a), new_job(a)
        stale = points.hold("catch_up", j, 1)
        reload = points.hold("load", j, 2)

        async def scenario(
            j: str = j, k: str = k, stale: threading.Event = stale, reload: threading.Event = reload
        ) -> None:
            async with httpx.AsyncClient(headers=HEADERS, timeout=30) as client:
                assert (await client.get(f"{b}/api/jobs/{j}")).status_code == 200
                await wait_for(points.reached("catch_up", j, 1))
                assert (await client.get(f"{b}/api/jobs/{k}")).status_code == 200  # evicts J
                opened = asyncio.Event()
                reader = asyncio.create_task(follow(b, j, opened))
                await wait_for(points.reached("load", j, 2))
                stored = await client.post(f"{a}/api/jobs/{j}/events", json={"events": logs(2)})
                assert stored.status_code == 201
                done = await client.post(f"{a}/api/jobs/{j}/events", json=DONE)
                assert done.status_code == 201
                reload.set()
                await opened.wait()
                stale.set()
                async with asyncio.timeout(10):
                    assert await reader == [1, 2, 3]
            bus = service.live_bus(j)
            assert bus is not None and bus.last_seq == 3

        asyncio.run(scenario())


# --- a read after an acknowledged post, while the bus catches up ------------------------------


def test_an_acknowledged_event_is_in_the_next_page_while_the_bus_catches_up(
    database_url: str,
) -> None:
    """A bus held in its read of the log ahead leaves new commits to that read; a page asked
    for meanwhile comes from the log, so it holds every event a 201 acknowledged (the ring
    answered without the last one, found by a replica test on PostgreSQL)."""
    app = create_jobs_app(database_url, settings=FAST)
    points = service_of(app).delay_point = Points()
    with serve_in_background(app) as url:
        for _ in range(ROUNDS):
            job_id = new_job(url)
            before = post(url, job_id, *logs(2))
            service_of(app).buses._buses.pop(job_id, None)  # cold: the next request loads it
            release = points.hold("catch_up", job_id)
            snapshot = httpx.get(f"{url}/api/jobs/{job_id}", headers=HEADERS)
            assert snapshot.status_code == 200
            assert points.reached("catch_up", job_id).wait(10)
            seqs = post(url, job_id, *logs(1))
            page = httpx.get(
                f"{url}/api/jobs/{job_id}/events",
                params={"since_seq": before[-1]},
                headers=HEADERS,
            ).json()
            release.set()
            assert [event["seq"] for event in page["events"]] == seqs


def test_a_cancel_posted_while_a_run_is_prepared_reaches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's bus could be evicted while `prepare` worked (other jobs loaded past
    `SYNTH_JOBS_MAX_HOT_JOBS`): the run then watched a closed bus, and a cancel went to the
    reloaded one, never reaching it. It subscribes before preparing, so its bus stays."""
    monkeypatch.setenv("SYNTH_JOBS_MAX_HOT_JOBS", "1")

    async def scenario() -> None:
        service = JobsService(tmp_path / "jobs.db")
        runs = ServerRuns("test", logging.getLogger("synth_ai.tests"))
        try:
            job = await service.create("test", {}, {}, run_here=True)
            other = await service.create("test", {}, {})
            preparing, prepared, cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()

            async def run(cancel: asyncio.Event) -> None:
                await cancel.wait()
                cancelled.set()

            async def prepare() -> Run:
                preparing.set()
                await prepared.wait()
                return run

            start = asyncio.create_task(runs.start(service, job["job_id"], prepare))
            await preparing.wait()
            await service.bus(other["job_id"])  # loaded past the limit: the idlest bus goes
            prepared.set()
            await start
            canceled = EventIn(type="job.status", data={"state": "canceled"})
            await service.emit(job["job_id"], [canceled])
            await asyncio.wait_for(cancelled.wait(), 10)
        finally:
            await service.close()

    for _ in range(ROUNDS):
        asyncio.run(scenario())
