"""Fan-out of job events at the ASGI level: batching per subscriber, the shared window, lag.

Streams are driven through the jobs app's ASGI interface with a `send` that records each body
message (and can hold one, as a client slow to read does), so the tests see exactly how many
messages carried how many frames.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from synth_ai.jobs import (
    EventIn,
    JobBus,
    JobEvent,
    JobsService,
    JobState,
    StreamSettings,
    create_jobs_app,
)

from .conftest import KEY

FRAME_ID = re.compile(rb"^id: (\d+)$", re.M)


class Stream:
    """One stream request made straight to the app; `bodies` are its body messages."""

    def __init__(self, app: Starlette, job_id: str, query: str = "") -> None:
        self.app = app
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/api/jobs/{job_id}/stream",
            "raw_path": f"/api/jobs/{job_id}/stream".encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"test"), (b"x-api-key", KEY.encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        self.bodies: list[bytes] = []
        self.arrived = asyncio.Condition()
        self.hold: Callable[[bytes], Awaitable[None]] | None = None
        self.left = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.app(self.scope, self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            assert message["status"] == 200
            return
        body = message.get("body", b"")
        if self.hold is not None:
            await self.hold(body)
        async with self.arrived:
            self.bodies.append(body)
            self.arrived.notify_all()

    async def until(self, done: Callable[[], bool]) -> None:
        async with self.arrived:
            await self.arrived.wait_for(done)

    @property
    def ids(self) -> list[int]:
        return [int(i) for i in FRAME_ID.findall(b"".join(self.bodies))]

    @property
    def text(self) -> bytes:
        return b"".join(self.bodies)

    async def finish(self) -> None:
        assert self.task is not None
        await self.task
        self.left.set()


def logs(count: int) -> list[EventIn]:
    return [EventIn(type="system.log", message=f"event {i}") for i in range(count)]


async def new_job(service: JobsService) -> str:
    job_id: str = (await service.create("custom", {}, {}))["job_id"]
    return job_id


def test_events_that_come_while_a_send_waits_go_out_together_in_order(tmp_path: Path) -> None:
    """300 events, each its own commit, published while the stream's previous send is held:
    once it returns they go out in one body message, in order, none missing, ids intact."""

    async def scenario() -> None:
        app = create_jobs_app(tmp_path / "j.db", settings=StreamSettings(end_grace_s=0.01))
        service: JobsService = app.state.jobs
        try:
            job_id = await new_job(service)
            stream = Stream(app, job_id)
            held, release = asyncio.Event(), asyncio.Event()

            async def hold(body: bytes) -> None:
                if b"id: 1\n" in body:  # the first event's send: a client slow to read
                    held.set()
                    await release.wait()

            stream.hold = hold
            stream.start()
            await stream.until(lambda: len(stream.bodies) == 1)  # the retry frame
            await service.emit(job_id, logs(1))
            await held.wait()
            for event in logs(299):  # 299 commits, each published on its own
                await service.emit(job_id, [event])
            sent_before = len(stream.bodies)
            release.set()
            await service.emit(job_id, [EventIn(type="job.status", data={"state": "succeeded"})])
            async with asyncio.timeout(30):
                await stream.finish()
            assert stream.ids == list(range(1, 302))
            after = stream.bodies[sent_before:]
            carrying = [b for b in after if FRAME_ID.search(b)]
            # the first event, then 299 in one message, then the status (maybe with them)
            assert len(carrying) <= 3, [len(FRAME_ID.findall(b)) for b in carrying]
            assert max(len(FRAME_ID.findall(b)) for b in carrying) >= 299
            assert stream.text.rstrip().endswith(b'"last_seq":301}')
        finally:
            await service.close()

    asyncio.run(scenario())


def test_many_subscribers_share_one_batch_and_each_gets_every_event(tmp_path: Path) -> None:
    """Events published in one turn of the loop reach each of 50 streams in one message."""

    async def scenario() -> None:
        app = create_jobs_app(tmp_path / "j.db", settings=StreamSettings(end_grace_s=0.01))
        service: JobsService = app.state.jobs
        try:
            job_id = await new_job(service)
            streams = [Stream(app, job_id) for _ in range(50)]
            for stream in streams:
                stream.start()
            for stream in streams:
                await stream.until(lambda s=stream: len(s.bodies) == 1)  # type: ignore[misc]
            bus = service.live_bus(job_id)
            assert bus is not None and len(bus.subscribers) == 50
            for seq in range(1, 101):  # one turn: no stream runs in between
                bus.publish(JobEvent(seq=seq, job_id=job_id, type="system.log", message="x"))
            for stream in streams:
                await stream.until(lambda s=stream: len(s.ids) == 100)  # type: ignore[misc]
                assert stream.ids == list(range(1, 101))
                assert len(stream.bodies) == 2  # the retry frame, then all 100 at once
            assert streams[0].bodies[1] is streams[-1].bodies[1]  # joined once for all
            for stream in streams:
                stream.left.set()
            async with asyncio.timeout(30):
                await asyncio.gather(*(s.task for s in streams if s.task is not None))
            assert not bus.subscribers
        finally:
            await service.close()

    asyncio.run(scenario())


def test_a_subscriber_a_whole_window_behind_is_told_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    """A stream held in a send while more than a window of events passes is dropped from the
    bus at once (not when its send returns), then says `lagged` after the events it had, with
    no gap; a stream that wants only statuses is not lagged by the logs it does not want; the
    shared window never holds more than `subscriber_buffer` events."""

    async def scenario() -> None:
        settings = StreamSettings(subscriber_buffer=20, end_grace_s=0.01)
        app = create_jobs_app(tmp_path / "j.db", settings=settings)
        service: JobsService = app.state.jobs
        try:
            job_id = await new_job(service)
            slow, statuses = Stream(app, job_id), Stream(app, job_id, "types=status")
            held, release = asyncio.Event(), asyncio.Event()

            async def hold(body: bytes) -> None:
                if b"id: 1\n" in body:
                    held.set()
                    await release.wait()

            slow.hold = hold
            slow.start()
            statuses.start()
            await slow.until(lambda: len(slow.bodies) == 1)
            await statuses.until(lambda: len(statuses.bodies) == 1)
            await service.emit(job_id, logs(1))
            await held.wait()
            bus = service.live_bus(job_id)
            assert bus is not None
            for event in logs(100):
                await service.emit(job_id, [event])
                assert len(bus.window) <= 20
            assert slow.task is not None and not slow.task.done()
            assert len(bus.subscribers) == 1, "the slow stream was not dropped from the bus"
            release.set()
            async with asyncio.timeout(30):
                await slow.task
            assert slow.ids == [1]
            assert slow.text.rstrip().endswith(
                b'"message":"stream fell behind; resume from your last id"}'
            )
            assert b"event: lagged" in slow.text
            await service.emit(job_id, [EventIn(type="job.status", data={"state": "succeeded"})])
            async with asyncio.timeout(30):
                await statuses.finish()
            assert statuses.ids == [102]
            assert b"event: end" in statuses.text
        finally:
            await service.close()

    asyncio.run(scenario())


def test_keep_alives_come_when_idle_and_events_still_flow_after(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = create_jobs_app(tmp_path / "j.db", settings=StreamSettings(end_grace_s=0.01))
        service: JobsService = app.state.jobs
        try:
            job_id = await new_job(service)
            stream = Stream(app, job_id, "heartbeat=0.05")
            stream.start()
            async with asyncio.timeout(30):
                await stream.until(lambda: stream.text.count(b": keep-alive") >= 3)
                await service.emit(job_id, logs(2))
                await stream.until(lambda: stream.ids == [1, 2])
                await service.emit(
                    job_id, [EventIn(type="job.status", data={"state": "succeeded"})]
                )
                await stream.finish()
            assert stream.ids == [1, 2, 3]
            assert not stream.text.rstrip().endswith(b": keep-alive")
        finally:
            await service.close()

    asyncio.run(scenario())


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3)), min_size=1, max_size=15),
    readers=st.integers(1, 6),
)
def test_paced_wake_ups_lose_no_event_of_the_plain_path(
    steps: list[tuple[int, int]], readers: int
) -> None:
    """The paced rounds hold to the plain path (every waiting subscription woken at each
    delivery): whatever the mix of publishes and loop turns, each subscription gets every
    event once, in order, and none waits past the linger."""
    total = sum(count for count, _ in steps) + 1

    async def run() -> list[list[int]]:
        bus = JobBus("j", last_seq=0, state=JobState.RUNNING)
        got: list[list[int]] = [[] for _ in range(readers)]

        async def read(seqs: list[int]) -> None:
            subscription = bus.subscribe()
            while not seqs or seqs[-1] < total:
                assert await subscription.wait(5), "a subscription was never woken"
                seqs += [event.seq for event in subscription.drain()]

        tasks = [asyncio.create_task(read(seqs)) for seqs in got]
        await asyncio.sleep(0)  # each reader subscribes and waits
        seq = 0
        for count, turns in steps:
            for _ in range(count):
                seq += 1
                bus.publish(JobEvent(seq=seq, job_id="j", type="x.log"))
            for _ in range(turns):
                await asyncio.sleep(0)
        bus.publish(JobEvent(seq=total, job_id="j", type="job.status", data={"state": "failed"}))
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)
        bus.close()
        return got

    assert asyncio.run(run()) == [list(range(1, total + 1))] * readers
