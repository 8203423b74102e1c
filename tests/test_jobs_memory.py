"""What a job's events cost a server's memory is bounded in bytes, whatever the events hold.

Real `synth-ai jobs serve` processes are fed big or many-named events and their resident memory
(VmRSS) is read from /proc before and after: it must grow by no more than the documented bounds
(ring, window, metric names per job) plus slack, where it once grew with every event.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synth_ai.jobs import EventIn, JobsService, StreamSettings, create_jobs_app
from synth_ai.task import TaskAppClient

from .conftest import KEY
from .processes import start_server, stop_server
from .test_jobs_fanout import Stream

HEADERS = {"X-API-Key": KEY}
MIB = 1024 * 1024


def rss(pid: int) -> int:
    """The process's resident memory, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY, "SSE_END_GRACE_SECS": "0.05"}
    process, url, output = start_server(["jobs", "serve", "--db", str(tmp_path / "j.db")], env)
    try:
        yield process.pid, url
    finally:
        stop_server(process, output)


def new_job(client: httpx.Client) -> str:
    job_id: str = client.post("/api/jobs", json={"kind": "custom"}).json()["job_id"]
    return job_id


def store(client: httpx.Client, job_id: str, events: list[dict[str, Any]]) -> None:
    answer = client.post(f"/api/jobs/{job_id}/events", json={"events": events})
    assert answer.status_code == 201, answer.text


def follow(url: str, job_id: str, seen: list[int]) -> None:
    """A reader to the end: the window holds what it has not taken yet (if it falls a window
    behind it is told so and resumes, as clients do)."""

    async def read() -> None:
        async with TaskAppClient(url, KEY) as client:
            seen.extend([event.seq async for event in client.stream_job(job_id)])

    asyncio.run(read())


@pytest.mark.parametrize("readers", [0, 1])
def test_big_events_do_not_grow_a_servers_memory(server: tuple[int, str], readers: int) -> None:
    """60 events of 2 MB to one job, with and without a reader: memory grows by about the
    ring (4 MiB) and window (8 MiB) of frames, not by the 120 MB sent."""
    pid, url = server
    blob = "x" * (2 * 1000 * 1000)
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        warm = new_job(client)
        for _ in range(8):  # the allocator, the page cache and the answers warmed up
            store(client, warm, [{"type": "x.log", "data": {"blob": blob}}])
        job_id = new_job(client)
        seen: list[int] = []
        threads = [threading.Thread(target=follow, args=(url, job_id, seen))]
        for thread in threads[:readers]:
            thread.start()
        before = rss(pid)
        for _ in range(60):
            store(client, job_id, [{"type": "x.log", "data": {"blob": blob}}])
        grown = rss(pid) - before
        store(client, job_id, [{"type": "job.status", "data": {"state": "succeeded"}}])
        for thread in threads[:readers]:
            thread.join(timeout=60)
    assert grown < 40 * MIB, f"RSS grew {grown / MIB:.0f} MiB for 120 MB of events"
    if readers:
        assert seen == list(range(1, 62))


def test_many_metric_names_do_not_grow_a_servers_memory(server: tuple[int, str]) -> None:
    """20,000 distinct metric names (8 KB each) on one job: the per-name rate state keeps the
    256 most recently used names, not all 160 MB of them."""
    pid, url = server
    suffix = "n" * 8000
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        warm = new_job(client)
        job_id = new_job(client)

        def names(job: str, start: int, count: int) -> None:
            for first in range(start, start + count, 400):
                store(
                    client,
                    job,
                    [
                        {"type": "x.metric", "data": {"name": f"{i}{suffix}", "value": 1}}
                        for i in range(first, first + 400)
                    ],
                )

        names(warm, 0, 2000)  # warmed up: a full ring and window of such events
        before = rss(pid)
        names(job_id, 0, 20_000)
        grown = rss(pid) - before
    assert grown < 40 * MIB, f"RSS grew {grown / MIB:.0f} MiB for 20,000 metric names"


def test_the_rings_of_all_hot_jobs_keep_within_the_process_budget(tmp_path: Path) -> None:
    """Ten jobs of 3 x 200 KB events each, rings of 512 KiB per job but 1 MiB in all: the
    idlest jobs drop their rings, and their events are still read back in full (from the log)."""
    settings = StreamSettings(ring_bytes=512 * 1024, ring_total_bytes=MIB)
    blob = "x" * 200_000

    async def scenario() -> None:
        service = JobsService(tmp_path / "j.db", settings)
        try:
            jobs = [(await service.create("custom", {}, {}))["job_id"] for _ in range(10)]
            for job_id in jobs:
                for _ in range(3):
                    await service.emit(job_id, [EventIn(type="x.log", data={"blob": blob})])
            buses = [service.live_bus(job_id) for job_id in jobs]
            held = sum(bus.ring_bytes for bus in buses if bus is not None)
            assert held <= MIB, held
            assert buses[-1] is not None and buses[-1].ring_bytes > 0  # the busiest kept its own
            for job_id in jobs:
                assert [e.seq for e in await service.events(job_id, 0, 10, None)] == [1, 2, 3]
        finally:
            await service.close()

    asyncio.run(scenario())


def test_a_stream_a_windows_bytes_behind_is_told_to_resume(tmp_path: Path) -> None:
    """The live window holds 64 KiB here: a stream held in a send while 160 KB pass is
    dropped and says `lagged` after what it had; the window never holds more than its bytes."""

    async def scenario() -> None:
        settings = StreamSettings(window_bytes=64 * 1024, end_grace_s=0.01)
        app = create_jobs_app(tmp_path / "j.db", settings=settings)
        service: JobsService = app.state.jobs
        try:
            job_id = (await service.create("custom", {}, {}))["job_id"]
            slow = Stream(app, job_id)
            held, release = asyncio.Event(), asyncio.Event()

            async def hold(body: bytes) -> None:
                if b"id: 1\n" in body:
                    held.set()
                    await release.wait()

            slow.hold = hold
            slow.start()
            await slow.until(lambda: len(slow.bodies) == 1)
            await service.emit(job_id, [EventIn(type="x.log", message="first")])
            await held.wait()
            bus = service.live_bus(job_id)
            assert bus is not None
            for _ in range(10):
                await service.emit(job_id, [EventIn(type="x.log", data={"blob": "y" * 16_000})])
                assert sum(len(e.data.get("blob", "")) for e in bus.window) <= 64 * 1024
            assert not bus.subscribers, "the stream a window behind was not dropped"
            release.set()
            async with asyncio.timeout(30):
                await slow.finish()
            assert slow.ids == [1] and b"event: lagged" in slow.text
        finally:
            await service.close()

    asyncio.run(scenario())
