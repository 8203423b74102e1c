"""Jobs servers as replicas on one PostgreSQL database: real `synth-ai jobs serve` processes.

Producers post to two replicas, readers stream from the others; one replica is killed -9 under
them and its readers resume on another with `Last-Event-ID`. Every acknowledged event reaches
every reader once, in order. A server-run job whose replica dies is failed by another replica
when its lease runs out.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from synth_ai.task import create_task_app, serve_in_background

from .conftest import KEY, echo_rollout, make_config
from .processes import start_server, stop_server

HEADERS = {"X-API-Key": KEY}
PRODUCERS_PER_REPLICA = 4
EVENTS = 1500
KILL_AT = 500


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[list[tuple[subprocess.Popen[str], str, list[str]]]]:
    env = {
        **os.environ,
        "ENVIRONMENT_API_KEY": KEY,
        "SSE_END_GRACE_SECS": "0.05",
        "SYNTH_JOBS_LEASE_SECS": "1",
    }
    servers = [start_server(["jobs", "serve", "--db", postgres_url], env) for _ in range(3)]
    try:
        yield servers
    finally:
        for process, _, output in servers:
            if process.poll() is None:
                stop_server(process, output)


def kill_9(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


async def read_all(urls: list[str], job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """Follow a job's stream to its end from the first URL, resuming on the next one with
    `Last-Event-ID` whenever the connection breaks; answers (seq, name, payload) in order."""
    seen: list[tuple[int, str, dict[str, Any]]] = []
    for url in urls:
        headers = dict(HEADERS)
        if seen:
            headers["Last-Event-ID"] = str(seen[-1][0])
        try:
            async with (
                httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client,
                aconnect_sse(client, "GET", f"/api/jobs/{job_id}/stream") as source,
            ):
                async for sse in source.aiter_sse():
                    if sse.event == "end":
                        return seen
                    if sse.id and sse.data:  # a keep-alive comment comes as an event with no data
                        seen.append((int(sse.id), sse.event, json.loads(sse.data)))
        except httpx.TransportError:
            continue  # this replica died: resume on the next
    raise AssertionError(f"the stream never ended; last seq {seen[-1][0] if seen else None}")


def test_every_acknowledged_event_reaches_every_reader_once_across_a_kill(
    replicas: list[tuple[subprocess.Popen[str], str, list[str]]],
) -> None:
    (_, a, _), (_, b, _), (victim, c, _) = replicas
    job_id = httpx.post(f"{a}/api/jobs", json={}, headers=HEADERS).json()["job_id"]

    async def scenario() -> tuple[dict[int, str], list[list[tuple[int, str, dict[str, Any]]]]]:
        acknowledged: dict[int, str] = {}
        posted = 0

        async def producer(url: str, name: str) -> None:
            nonlocal posted
            async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
                n = 0
                while posted < EVENTS:
                    batch = [
                        {"type": "system.log", "message": f"{name}-{n}-{k}"}
                        for k in range(1 + n % 3)
                    ]
                    posted += len(batch)
                    n += 1
                    response = await client.post(
                        f"/api/jobs/{job_id}/events", json={"events": batch}
                    )
                    assert response.status_code == 201, response.text
                    for seq, event in zip(response.json()["seqs"], batch, strict=True):
                        assert seq not in acknowledged, "a seq was given twice"
                        acknowledged[seq] = event["message"]
                    if len(acknowledged) >= KILL_AT and victim.poll() is None:
                        kill_9(victim)  # its readers are mid-stream right now

        readers = [
            asyncio.create_task(read_all(urls, job_id)) for urls in ([c, b], [c, a], [b, a], [a, b])
        ]
        await asyncio.gather(
            *(producer(url, f"{url[-5:]}.{i}") for url in (a, b) for i in range(4))
        )
        done = await httpx.AsyncClient(headers=HEADERS).post(
            f"{b}/api/jobs/{job_id}/events",
            json={"type": "job.status", "data": {"state": "succeeded"}},
        )
        assert done.status_code == 201
        acknowledged[done.json()["seqs"][0]] = "succeeded"
        return acknowledged, list(await asyncio.gather(*readers))

    acknowledged, streams = asyncio.run(scenario())
    assert victim.returncode == -signal.SIGKILL
    expected = list(range(1, len(acknowledged) + 1))
    assert sorted(acknowledged) == expected  # seqs from the database: unique, no hole
    for stream in streams:
        assert [seq for seq, _, _ in stream] == expected  # every event once, in order
        for seq, name, payload in stream[:-1]:
            assert name == "log" and payload["message"] == acknowledged[seq]
        assert stream[-1][2]["state"] == "succeeded"
    snapshots = [httpx.get(f"{url}/api/jobs/{job_id}", headers=HEADERS).json() for url in (a, b)]
    for snapshot in snapshots:  # the same job seen from every live replica
        assert (snapshot["state"], snapshot["last_seq"]) == ("succeeded", len(expected))


def test_a_job_whose_replica_dies_is_failed_by_another(
    replicas: list[tuple[subprocess.Popen[str], str, list[str]]],
) -> None:
    (owner, a, _), (_, b, _), (_, c, _) = replicas
    release = threading.Event()

    async def stuck(request: Any, context: Any) -> Any:
        await asyncio.to_thread(release.wait, 60)  # a rollout that outlives its jobs server
        return echo_rollout(request, context)

    with serve_in_background(create_task_app(make_config(rollout=stuck))) as app_url:
        config = {"task_app_url": app_url, "api_key": KEY, "seeds": [1, 2], "max_retries": 0}
        created = httpx.post(
            f"{a}/api/jobs", json={"kind": "eval", "config": config}, headers=HEADERS
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]

        async def follow() -> list[dict[str, Any]]:
            statuses: list[dict[str, Any]] = []
            async with (
                httpx.AsyncClient(base_url=b, headers=HEADERS, timeout=60) as client,
                aconnect_sse(
                    client, "GET", f"/api/jobs/{job_id}/stream", params={"types": "status"}
                ) as source,
            ):
                async for sse in source.aiter_sse():
                    if sse.event == "end":
                        return statuses
                    if sse.event != "status":
                        continue  # the first chunk's `retry:` has no event
                    statuses.append(json.loads(sse.data))
                    if statuses[-1]["state"] == "running" and owner.poll() is None:
                        kill_9(owner)  # the replica running the job dies mid-rollout
            return statuses

        try:
            statuses = asyncio.run(follow())
        finally:
            release.set()  # before the app's shutdown waits for its rollouts
    assert [s["state"] for s in statuses][-1] == "failed"
    assert "lease ran out" in statuses[-1]["message"]
    snapshot = httpx.get(f"{c}/api/jobs/{job_id}", headers=HEADERS).json()
    assert snapshot["state"] == "failed"


def test_a_cancel_at_one_replica_stops_the_eval_another_runs(
    replicas: list[tuple[subprocess.Popen[str], str, list[str]]],
) -> None:
    """The cancel is stored at B; A, which runs the job, learns of it through the database's
    notification, stops rolling out, and the job ends `canceled` everywhere."""
    (_, a, _), (_, b, _), (_, c, _) = replicas
    started: list[int] = []

    def slow(request: Any, context: Any) -> dict[str, Any]:
        started.append(request.env.seed)
        if request.env.seed >= 2:
            context.cancelled.wait(20)  # held until the eval abandons it
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    with serve_in_background(create_task_app(make_config(slow))) as app_url:
        config = {"task_app_url": app_url, "api_key": KEY, "seeds": list(range(12))}
        config |= {"concurrency": 2, "max_retries": 0}
        created = httpx.post(
            f"{a}/api/jobs", json={"kind": "eval", "config": config}, headers=HEADERS
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]

        async def follow() -> list[str]:
            states: list[str] = []
            async with (
                httpx.AsyncClient(base_url=c, headers=HEADERS, timeout=60) as client,
                aconnect_sse(client, "GET", f"/api/jobs/{job_id}/stream") as source,
            ):
                async for sse in source.aiter_sse():
                    if sse.event == "end":
                        return states
                    payload = json.loads(sse.data) if sse.data else {}
                    if payload.get("type") == "eval.result" and payload["seed"] == 1:
                        canceled = await client.post(f"{b}/api/jobs/{job_id}/cancel")
                        assert canceled.status_code == 200, canceled.text
                    if sse.event == "status":
                        states.append(payload["state"])
            return states

        states = asyncio.run(follow())
        assert states[-1] == "canceled" and "succeeded" not in states
        for url in (a, b, c):
            assert httpx.get(f"{url}/api/jobs/{job_id}", headers=HEADERS).json()["state"] == (
                "canceled"
            )
        count = len(started)
        with httpx.Client(base_url=app_url, headers=HEADERS) as client:  # A stopped sending
            deadline = time.monotonic() + 30  # polled, no sleeps; a deadline, not a count
            while time.monotonic() < deadline:
                if client.get("/health").json()["rollouts"]["running"] == 0:
                    break
        assert len(started) == count <= 4, started
