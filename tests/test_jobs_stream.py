"""Job event streams against a real server on loopback: framing, resume, replay, rates, limits."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from synth_ai.jobs import JobsService, StreamSettings, create_jobs_app, finite_json
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY, wait_for

HEADERS = {"X-API-Key": KEY}
FAST = StreamSettings(end_grace_s=0.05, heartbeat_s=5.0, max_clients_per_job=3)


@pytest.fixture(scope="module")
def jobs(module_database_url: str) -> Iterator[tuple[str, Starlette]]:
    """One server per engine: every test using it runs on SQLite and on PostgreSQL."""
    app = create_jobs_app(module_database_url, settings=FAST)
    with serve_in_background(app) as url:
        yield url, app


def new_job(url: str) -> str:
    return httpx.post(f"{url}/api/jobs", json={"kind": "custom"}, headers=HEADERS).json()["job_id"]


def post(url: str, job_id: str, *events: dict[str, Any]) -> list[int]:
    response = httpx.post(
        f"{url}/api/jobs/{job_id}/events", json={"events": list(events)}, headers=HEADERS
    )
    assert response.status_code == 201, response.text
    return response.json()["seqs"]


def done(state: str = "succeeded") -> dict[str, Any]:
    return {"type": "job.status", "data": {"state": state}}


async def read_sse(url: str, job_id: str, **params: Any) -> list[Any]:
    async with (
        httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client,
        aconnect_sse(client, "GET", f"/api/jobs/{job_id}/stream", params=params) as source,
    ):
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert source.response.headers["cache-control"] == "no-cache"
        return [sse async for sse in source.aiter_sse()]


def event_ids(frames: list[Any]) -> list[str]:
    """Ids of the job events; the retry frame has no data, and a parser repeats the last id
    on control frames (end), which carry no id line of their own."""
    return [f.id for f in frames if f.data and f.event not in ("end", "lagged", "reset")]


payloads = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(
        st.text(max_size=30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**12), 10**12),
        st.lists(st.floats(allow_nan=True), max_size=3),
    ),
    max_size=4,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    message=st.text(max_size=60),
    data=payloads,
    kind=st.sampled_from(
        ["system.log", "rl.step.metric", "artifact.checkpoint", "prompt.learning.progress"]
    ),
)
def test_framing_parses_back_with_an_independent_parser(
    jobs: tuple[str, Starlette], message: str, data: dict[str, Any], kind: str
) -> None:
    url, _ = jobs
    job_id = new_job(url)
    # json.dumps writes NaN and Infinity as bare tokens, as careless producers really send them
    body = json.dumps({"events": [{"type": kind, "message": message, "data": data}, done()]})
    response = httpx.post(
        f"{url}/api/jobs/{job_id}/events",
        content=body,
        headers={**HEADERS, "content-type": "application/json"},
    )
    if "\x00" in message or "_nonfinite" in finite_json(data):
        # not JSON, or a NUL no text column holds: refused at the edge, nothing stored
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["error"]["code"] == "invalid_request"
        page = httpx.get(f"{url}/api/jobs/{job_id}/events", headers=HEADERS).json()
        assert page["events"] == []
        return
    assert response.status_code == 201
    frames = asyncio.run(read_sse(url, job_id))
    assert [f.event for f in frames][-1] == "end"
    first = next(f for f in frames if f.id)
    assert first.id == "1"
    assert (
        first.event
        == {
            "system.log": "log",
            "rl.step.metric": "metric",
            "artifact.checkpoint": "artifact",
            "prompt.learning.progress": "metric",
        }[kind]
    )
    decoded = json.loads(first.data)  # strict JSON
    # the payload itself at the top level, every producer field kept, plus seq, type, job_id
    assert (decoded["seq"], decoded["type"], decoded["job_id"]) == (1, kind, job_id)
    assert isinstance(decoded["ts"], float)
    kept = {k: v for k, v in data.items() if k not in ("seq", "type", "job_id", "ts")}
    assert {k: decoded[k] for k in kept} == json.loads(json.dumps(kept))
    if first.event == "log" and "message" not in data:
        assert decoded["message"] == message


class CuttingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, but the n-th stream connection is cut after `cuts[n]` chunks."""

    def __init__(self, cuts: list[int]) -> None:
        self.cuts = list(cuts)
        self.real = httpx.AsyncHTTPTransport()
        self.connections = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.real.handle_async_request(request)
        if not request.url.path.endswith("/stream") or not self.cuts:
            return response
        self.connections += 1
        limit = self.cuts.pop(0)
        stream = response.stream

        class Cut(httpx.AsyncByteStream):
            async def __aiter__(self):  # type: ignore[no-untyped-def]
                count = 0
                async for chunk in stream:  # type: ignore[union-attr]
                    if count >= limit:
                        raise httpx.ReadError("connection dropped by the test")
                    count += 1
                    yield chunk

            async def aclose(self) -> None:
                await stream.aclose()  # type: ignore[union-attr]

        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=Cut(),
            extensions=response.extensions,
        )


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(total=st.integers(5, 60), cuts=st.lists(st.integers(0, 25), min_size=1, max_size=5))
def test_resume_across_dropped_connections_yields_exactly_1_to_n(
    jobs: tuple[str, Starlette], total: int, cuts: list[int]
) -> None:
    url, _ = jobs
    job_id = new_job(url)

    async def scenario() -> list[int]:
        async def produce() -> None:
            async with httpx.AsyncClient(base_url=url, headers=HEADERS) as producer:
                for i in range(total - 1):
                    await producer.post(
                        f"/api/jobs/{job_id}/events",
                        json={"type": "system.log", "message": f"line {i}"},
                    )
                    await asyncio.sleep(0)
                await producer.post(f"/api/jobs/{job_id}/events", json=done())

        transport = CuttingTransport(cuts)
        async with TaskAppClient(url, KEY, transport=transport) as client:
            producing = asyncio.create_task(produce())
            received = [e.seq async for e in client.stream_job(job_id, backoff_s=0.001)]
            await producing
        return received

    assert asyncio.run(scenario()) == list(range(1, total + 1))


def test_replay_from_the_log_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with serve_in_background(create_jobs_app(db, settings=FAST)) as url:
        job_id = new_job(url)
        post(url, job_id, *({"type": "system.log", "message": str(i)} for i in range(20)))
    with serve_in_background(create_jobs_app(db, settings=FAST)) as url:
        assert post(url, job_id, done()) == [21]  # numbering continues after the restart
        root = httpx.get(f"{url}/").json()
        assert root == {"status": "ok", "service": "jobs", "log_write_errors": 0}
        frames = asyncio.run(read_sse(url, job_id))
        assert event_ids(frames) == [str(i) for i in range(1, 22)]
        resumed = asyncio.run(read_sse(url, job_id, since_id=15))
        assert event_ids(resumed) == [str(i) for i in range(16, 22)]
        snapshot = httpx.get(f"{url}/api/jobs/{job_id}", headers=HEADERS).json()
        assert (snapshot["state"], snapshot["last_seq"]) == ("succeeded", 21)


def test_metrics_are_coalesced_per_name_and_the_rest_always_delivered(tmp_path: Path) -> None:
    hz = 4.0
    app = create_jobs_app(
        tmp_path / "j.db", settings=StreamSettings(max_metric_hz=hz, end_grace_s=0.3)
    )
    posted_s: list[float] = []
    with serve_in_background(app) as url:
        job_id = new_job(url)

        async def scenario() -> list[dict[str, Any]]:
            received: list[dict[str, Any]] = []
            live = asyncio.Event()

            async def consume() -> None:
                async with TaskAppClient(url, KEY) as client:
                    async for event in client.stream_job(job_id):
                        received.append(event.model_dump())
                        live.set()

            consumer = asyncio.create_task(consume())
            async with httpx.AsyncClient(base_url=url, headers=HEADERS) as producer:
                await producer.post(
                    f"/api/jobs/{job_id}/events", json={"events": [{"type": "system.log"}]}
                )
                await asyncio.wait_for(live.wait(), 30)  # subscribed: the rest comes live
                started = time.monotonic()
                for step in range(200):  # ~100 Hz for two seconds, two metric names
                    batch = [
                        {"type": "rl.step.metric", "data": {"name": n, "value": step, "step": step}}
                        for n in ("loss", "reward")
                    ]
                    if step % 20 == 0:
                        batch += [
                            {"type": "system.log", "message": f"log {step}"},
                            {
                                "type": "artifact.checkpoint",
                                "data": {"kind": "checkpoint", "url": f"s3://c/{step}"},
                            },
                        ]
                    await producer.post(f"/api/jobs/{job_id}/events", json={"events": batch})
                    await asyncio.sleep(0.01)
                await producer.post(f"/api/jobs/{job_id}/events", json=done())
                posted_s.append(time.monotonic() - started)
            await consumer
            return received

        received = asyncio.run(scenario())
    for name in ("loss", "reward"):
        values = [e["data"]["value"] for e in received if e["data"].get("name") == name]
        assert values == sorted(values) and values[-1] == 199, f"{name}: {values}"
        # coalesced (at most hz a second while values come, plus the first and the final
        # flush); bounded by how long posting took, as a pause only lengthens it. The exact
        # rate is held on a virtual clock in test_metric_pacing.py.
        assert len(values) <= hz * (posted_s[0] + 1) + 2, (name, len(values))
    types = Counter(e["type"] for e in received)
    assert types["system.log"] == 11 and types["artifact.checkpoint"] == 10
    assert received[-1]["data"]["state"] == "succeeded"


def test_a_stalled_subscriber_is_cut_loose_and_the_producer_never_waits(tmp_path: Path) -> None:
    settings_ = StreamSettings(subscriber_buffer=50, send_timeout_s=60.0, end_grace_s=0.05)
    app = create_jobs_app(tmp_path / "j.db", settings=settings_)
    with serve_in_background(app) as url:
        job_id = new_job(url)
        host, port = url.removeprefix("http://").split(":")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, int(port)))
        request = f"GET /api/jobs/{job_id}/stream HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n"
        stalled.sendall(request.encode())
        assert stalled.recv(12) == b"HTTP/1.1 200"  # the stream started; now it is never read
        service: JobsService = app.state.jobs
        bus = service.live_bus(job_id)
        assert bus is not None
        assert len(bus.subscribers) == 1
        big = "x" * 16_384  # 16 MB in all: more than kernel and transport buffers hold
        slowest = 0.0
        for _ in range(40):
            started = time.perf_counter()
            post(url, job_id, *({"type": "system.log", "message": big} for _ in range(25)))
            slowest = max(slowest, time.perf_counter() - started)
        try:
            assert len(bus.subscribers) == 0, "the stalled subscriber was not cut loose"
            # a post that waited on the subscriber would wait out its send timeout (60 s)
            assert slowest < 10, f"a producer post took {slowest:.2f}s"
            assert bus.last_seq == 1000
        finally:
            stalled.close()


def test_a_subscriber_whose_send_stalls_past_the_send_timeout_is_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that stops reading while its stream is far within the live window: nothing
    overflows, so only the send timeout (one send blocked `send_timeout_s`) can end it."""
    settings_ = StreamSettings(
        subscriber_buffer=100_000, window_bytes=256 * 1024 * 1024, send_timeout_s=0.5
    )
    app = create_jobs_app(tmp_path / "j.db", settings=settings_)
    caplog.set_level(logging.INFO, logger="synth_ai.jobs.sse")
    with serve_in_background(app) as url:
        job_id = new_job(url)
        host, port = url.removeprefix("http://").split(":")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            stalled.connect((host, int(port)))
            request = (
                f"GET /api/jobs/{job_id}/stream HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n"
            )
            stalled.sendall(request.encode())
            assert stalled.recv(12) == b"HTTP/1.1 200"  # started; now it is never read
            bus = app.state.jobs.live_bus(job_id)
            assert bus is not None and len(bus.subscribers) == 1
            big = "x" * 16_384  # 16 MB in all: more than kernel and transport buffers hold
            for _ in range(40):
                post(url, job_id, *({"type": "system.log", "message": big} for _ in range(25)))
            wait_for(lambda: len(bus.subscribers) == 0, timeout_s=30)
        finally:
            stalled.close()
    assert "closing a stream whose client stopped reading" in caplog.text


def test_a_client_that_stops_reading_early_releases_its_stream(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)
    post(url, job_id, *({"type": "system.log", "message": str(i)} for i in range(10)))

    async def scenario() -> None:
        async with TaskAppClient(url, KEY) as client:
            stream = client.stream_job(job_id)
            async for event in stream:
                if event.seq == 5:
                    break
            await stream.aclose()
            deadline = time.monotonic() + 30  # poll the snapshot (no sleeps) until the server
            while time.monotonic() < deadline:  # lets go
                if (await client.status(job_id))["streams"] == 0:
                    return
            raise AssertionError("the server kept streaming to a client that left")

    asyncio.run(scenario())


def test_heartbeats_on_an_idle_stream(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)
    with httpx.stream(
        "GET",
        f"{url}/api/jobs/{job_id}/stream",
        params={"heartbeat": 0.1},
        headers=HEADERS,
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("retry: ")
        seen = [next(lines) for _ in range(6)]
    assert seen.count(": keep-alive") >= 2


def test_refusals_come_before_any_stream(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id, other = new_job(url), new_job(url)
    stream = f"{url}/api/jobs/{job_id}/stream"

    def status_of(target: str, **kwargs: Any) -> httpx.Response:
        response = httpx.get(target, timeout=5, **kwargs)
        assert not response.headers["content-type"].startswith("text/event-stream")
        return response

    assert status_of(stream).status_code == 401
    assert status_of(stream, headers={"X-API-Key": "wrong"}).status_code == 401
    assert (
        status_of(f"{url}/api/jobs/job_nope/stream", headers=HEADERS).json()["detail"]["error"][
            "code"
        ]
        == "job_not_found"
    )
    token = httpx.post(f"{url}/api/jobs/{other}/stream-token", headers=HEADERS).json()["token"]
    assert status_of(stream, params={"token": token}).status_code == 403
    assert status_of(stream, params={"token": token + "0"}).status_code == 401
    mine = httpx.post(f"{url}/api/jobs/{job_id}/stream-token", headers=HEADERS).json()["token"]
    with httpx.stream("GET", stream, params={"token": mine, "heartbeat": 0.1}, timeout=5) as ok:
        assert ok.status_code == 200
    with (
        httpx.Client(headers=HEADERS, timeout=5) as client,
        client.stream("GET", stream, params={"heartbeat": 1}) as a,
        client.stream("GET", stream, params={"heartbeat": 1}) as b,
        client.stream("GET", stream, params={"heartbeat": 1}) as c,
    ):
        assert (a.status_code, b.status_code, c.status_code) == (200, 200, 200)
        refused = client.get(stream)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert (
        status_of(
            f"{url}/api/jobs/{job_id}/stream", headers=HEADERS, params={"types": "bogus"}
        ).status_code
        == 422
    )


def test_polling_fallback_when_there_is_no_stream_route(tmp_path: Path) -> None:
    from synth_ai.jobs import JobsRoutes
    from synth_ai.task.errors import EXCEPTION_HANDLERS

    service = JobsService(tmp_path / "j.db", FAST)
    app = Starlette(
        routes=JobsRoutes(service).protected, exception_handlers=dict(EXCEPTION_HANDLERS)
    )
    with serve_in_background(app) as url:
        job_id = new_job(url)
        post(
            url,
            job_id,
            {"type": "system.log", "message": "a"},
            {"type": "system.log", "message": "b"},
        )
        post(url, job_id, done("failed"))

        async def read() -> list[int]:
            async with TaskAppClient(url, KEY) as client:
                return [e.seq async for e in client.stream_job(job_id, poll_interval_s=0.01)]

        assert asyncio.run(read()) == [1, 2, 3]


def test_frames_carry_the_payload_at_the_top_level(jobs: tuple[str, Starlette]) -> None:
    """`JSON.parse(e.data).value` is a metric's value; every kind carries its design fields."""
    url, _ = jobs
    job_id = new_job(url)
    post(
        url,
        job_id,
        {
            "type": "rl.train.metric",
            "data": {
                "name": "avg_reward",
                "value": 0.62,
                "step": 820,
                "epoch": 4,
                "split": "train",
                "extra": [1],
            },
        },
        {"type": "system.log", "level": "warning", "message": "slow step"},
        {"type": "artifact.results", "data": {"kind": "results", "url": "/a/b", "step": 3}},
        done(),
    )
    frames = [f for f in asyncio.run(read_sse(url, job_id)) if f.id and f.event != "end"]
    payloads = {f.event: json.loads(f.data) for f in frames}
    metric = payloads["metric"]
    assert (metric["name"], metric["value"], metric["step"], metric["epoch"]) == (
        "avg_reward",
        0.62,
        820,
        4,
    )
    assert metric["split"] == "train" and metric["extra"] == [1] and "data" not in metric
    assert payloads["log"]["level"] == "warning" and payloads["log"]["message"] == "slow step"
    assert payloads["artifact"]["url"] == "/a/b"  # artifact.results is an artifact
    assert payloads["status"]["state"] == "succeeded"
    for frame in frames:
        assert json.loads(frame.data)["seq"] == int(frame.id)
        assert json.loads(frame.data)["job_id"] == job_id


def test_a_finished_job_read_to_its_end_answers_204(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)
    (last,) = post(url, job_id, done())
    stream = f"{url}/api/jobs/{job_id}/stream"
    at_end = httpx.get(stream, headers={**HEADERS, "Last-Event-ID": str(last)})
    assert at_end.status_code == 204 and at_end.content == b""
    assert httpx.get(stream, params={"since_id": last}, headers=HEADERS).status_code == 204
    behind = asyncio.run(read_sse(url, job_id, since_id=last - 1))  # still behind: replayed
    assert next(f.event for f in behind if f.data) == "status"

    async def follow() -> list[int]:
        async with TaskAppClient(url, KEY) as client:
            return [e.seq async for e in client.stream_job(job_id, since_id=last)]

    assert asyncio.run(follow()) == []  # the client stops on 204 instead of reconnecting


def test_heartbeat_frames_when_asked_for(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)

    async def first_heartbeat() -> dict[str, Any]:
        async with (
            httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client,
            aconnect_sse(
                client,
                "GET",
                f"/api/jobs/{job_id}/stream",
                params={"types": "status,heartbeat", "heartbeat": 0.05},
            ) as source,
        ):
            async for sse in source.aiter_sse():
                if sse.event == "heartbeat":
                    assert sse.id == ""  # no id: a heartbeat moves no client's cursor
                    return json.loads(sse.data)
        raise AssertionError("no heartbeat")

    beat = asyncio.run(first_heartbeat())
    assert beat["alive"] is True and beat["ts"] > 0


def test_stream_tokens_outlive_the_server_that_issued_them(tmp_path: Path) -> None:
    """Tokens are signed with a secret kept with the database: a browser's reconnect after a
    restart, or to another server on the same database, is still let in."""
    db = tmp_path / "jobs.db"
    with serve_in_background(create_jobs_app(db, settings=FAST)) as url:
        job_id = new_job(url)
        post(url, job_id, {"type": "x.log", "message": "before the restart"})
        token = httpx.post(f"{url}/api/jobs/{job_id}/stream-token", headers=HEADERS).json()
        assert token["expires_at"] > time.time() + 3600  # covers a long job, reconnects too
    with serve_in_background(create_jobs_app(db, settings=FAST)) as url:
        post(url, job_id, done())
        answer = httpx.get(f"{url}/api/jobs/{job_id}/stream", params={"token": token["token"]})
        assert answer.status_code == 200
        assert b"before the restart" in answer.content
        assert token["token"] not in answer.text


def test_polling_takes_after_and_the_rl_alias(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)
    post(url, job_id, *({"type": "x.log", "message": str(i)} for i in range(5)))
    for path in (f"/api/jobs/{job_id}/events", f"/api/rl/jobs/{job_id}/events"):
        page = httpx.get(f"{url}{path}", params={"after": 3}, headers=HEADERS).json()
        assert [e["seq"] for e in page["events"]] == [4, 5] and page["next_seq"] == 5
        assert page["events"][0]["data"] == {}  # polling keeps the full stored event
