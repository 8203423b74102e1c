"""Soak of the job streams (issue 26): two `synth-ai jobs serve` replicas on one PostgreSQL
database; producers post through raw HTTP (with `Idempotency-Key`, retried on the other replica)
and through `RemoteEmitter`; several readers per job on both replicas, half through the project's
`stream_job`, half raw SSE that records every frame as sent; one replica is killed -9 (or stopped
as by Ctrl-C) and restarted at random times; some jobs are cancelled. At the end: every stored
event reaches every reader once and in order (a metric may be coalesced, but each name's last
value arrives), every acknowledged seq is stored as posted, every call was answered within a
bound, and the replica never killed holds its memory flat.

`SYNTH_SOAK_SECONDS` (default 40) is how long the load runs; the random schedule comes from
`SYNTH_SOAK_SEED` (printed, so a failure can be replayed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from httpx_sse import aconnect_sse

from synth_ai.jobs import RemoteEmitter
from synth_ai.jobs.client import stream_job
from synth_ai.jobs.models import sse_name

from .conftest import KEY
from .processes import free_port, start_server, stop_server

SECONDS = float(os.environ.get("SYNTH_SOAK_SECONDS") or 40)
SEED = int(os.environ.get("SYNTH_SOAK_SEED") or random.randrange(2**32))
JOBS = 6
READERS_PER_JOB = 4
CALL_BOUND_S = 30.0
"""Every client call (post, cancel, read) is answered within this, or the soak fails."""
RSS_GROWTH_BOUND = 48 * 1024 * 1024
HEADERS = {"X-API-Key": KEY}
METRICS = ["loss", "accuracy", "reward"]
TERMINAL = ("succeeded", "canceled")
T = TypeVar("T")


class Replica:
    """A `synth-ai jobs serve` process that can be killed -9 and started again on its port."""

    def __init__(self, db: str, **env: str) -> None:
        self.db, self.port = db, free_port()
        self.env = {**os.environ, "ENVIRONMENT_API_KEY": KEY, "SSE_END_GRACE_SECS": "0.05", **env}
        self.restarts = 0
        self.start()

    def start(self) -> None:
        self.process, self.url, self.output = start_server(
            ["jobs", "serve", "--db", self.db], self.env, port=self.port
        )

    def restart(self, how: signal.Signals) -> None:
        """Kill -9, or stop as Ctrl-C does (open streams end, the log's queue is written)."""
        os.kill(self.process.pid, how)
        self.process.wait(timeout=30)
        self.restarts += 1
        self.start()

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_server(self.process, self.output)


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[Replica, Replica]]:
    # the victim also keeps few jobs hot and a short ring: buses are evicted and reloaded under
    # load, and resumed readers replay from the log
    victim = Replica(postgres_url, SYNTH_JOBS_MAX_HOT_JOBS="2", SSE_RING_BUFFER_EVENTS="40")
    steady = Replica(postgres_url)
    try:
        yield victim, steady
    finally:
        for replica in (victim, steady):
            replica.stop()
            notes = [line for line in replica.output if "WARN" in line or "ERROR" in line]
            print(replica.url, "warnings and errors:", *notes[:20], sep="\n")


async def bounded(call: Awaitable[T], what: str) -> T:
    """An answer within CALL_BOUND_S, or the soak fails naming the call left unanswered."""
    try:
        async with asyncio.timeout(CALL_BOUND_S):
            return await call
    except TimeoutError:
        raise AssertionError(f"unanswered for {CALL_BOUND_S} s: {what}") from None


@dataclass
class Job:
    job_id: str
    cancel_at: float | None
    acknowledged: dict[int, dict[str, Any]] = field(default_factory=dict)
    emitted: int = 0
    retried: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)


def random_batch(rng: random.Random, producer: str, n: int) -> list[dict[str, Any]]:
    """One to three events of every SSE kind, each marked with who posted it."""
    marks = [f"{producer}-{n}-{k}" for k in range(rng.randint(1, 3))]
    kinds = [
        lambda m: {"type": "system.log", "message": m},
        lambda m: {"type": "train.metric", "data": {"name": rng.choice(METRICS), "value": n}},
        lambda m: {"type": "job.status", "data": {"state": "running", "mark": m}},
        lambda m: {"type": "artifact.checkpoint", "data": {"name": f"{m}.pt"}},
    ]
    return [rng.choice(kinds)(mark) for mark in marks]


async def post(urls: list[str], job: Job, events: list[dict[str, Any]]) -> httpx.Response | None:
    """Post once per Idempotency-Key, trying the replicas in turn while one is down; None when
    the job had finished (409)."""
    key = uuid.uuid4().hex
    async with httpx.AsyncClient(headers={**HEADERS, "Idempotency-Key": key}) as client:
        for attempt in range(400):
            url = urls[attempt % len(urls)]
            try:
                answer = await client.post(
                    f"{url}/api/jobs/{job.job_id}/events", json={"events": events}, timeout=10
                )
            except httpx.TransportError:
                job.retried += 1
                await asyncio.sleep(0.05)  # a replica restarting: try the other one
                continue
            if answer.status_code == 409 and answer.json()["detail"]["error"]["code"] in (
                "job_finished"
            ):
                return None
            if answer.status_code in (502, 503, 504):
                job.retried += 1
                await asyncio.sleep(0.05)
                continue
            assert answer.status_code == 201, answer.text
            for seq, event in zip(answer.json()["seqs"], events, strict=True):
                assert job.acknowledged.setdefault(seq, event) == event, "a seq given twice"
            return answer
    raise AssertionError(f"no replica stored a post to {job.job_id}")


async def producer(
    rng: random.Random, urls: list[str], job: Job, name: str, stop: asyncio.Event
) -> None:
    n = 0
    while not stop.is_set() and not job.finished.is_set():
        batch = random_batch(rng, name, n)
        if await bounded(post(urls, job, batch), f"post {name} {n}") is None:
            return
        n += 1
        await asyncio.sleep(rng.uniform(0.02, 0.15))  # a producer's pace, not synchronisation


async def raw_reader(url: str, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """Every frame as the server sent it, resuming with Last-Event-ID after any break; asserts
    that each connection starts past its Last-Event-ID and only goes forward."""
    received: list[tuple[int, str, dict[str, Any]]] = []
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=None)) as client:
        while True:
            headers = dict(HEADERS)
            if received:
                headers["Last-Event-ID"] = str(received[-1][0])
            try:
                async with aconnect_sse(
                    client, "GET", f"/api/jobs/{job_id}/stream", headers=headers
                ) as source:
                    if source.response.status_code == 204:
                        return received
                    if source.response.status_code in (502, 503, 504):
                        await asyncio.sleep(0.1)
                        continue
                    assert source.response.status_code == 200, source.response.status_code
                    async for sse in source.aiter_sse():
                        if sse.event == "end":
                            return received
                        if sse.event in ("lagged", "reset"):
                            break
                        if sse.id and sse.data:
                            seq = int(sse.id)
                            assert not received or seq > received[-1][0], (received[-1][0], seq)
                            received.append((seq, sse.event, json.loads(sse.data)))
            except httpx.TransportError:
                await asyncio.sleep(0.1)  # the replica is restarting: connect again


async def client_reader(url: str, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    received: list[tuple[int, str, dict[str, Any]]] = []
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        async for event in stream_job(client, job_id, retry_for_s=CALL_BOUND_S):
            assert not received or event.seq > received[-1][0]
            received.append((event.seq, event.sse_name, event.wire_payload()))
    return received


async def stored_events(url: str, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=10) as client:
        while True:
            page = await client.get(
                f"/api/jobs/{job_id}/events", params={"after": len(events), "limit": 1000}
            )
            assert page.status_code == 200, page.text
            batch = page.json()["events"]
            events += batch
            if len(batch) < 1000:
                return events


def check_reader(
    stored: list[dict[str, Any]], received: list[tuple[int, str, dict[str, Any]]], who: str
) -> None:
    """Once, in order, everything up to the terminal status but coalesced metrics; each metric
    name's last value. Events stored after the terminal status (the log takes late events, a
    stream waits `SSE_END_GRACE_SECS` for them) need not arrive, but come in order if they do."""
    by_seq = {event["seq"]: event for event in stored}
    seqs = [seq for seq, _, _ in received]
    assert seqs == sorted(set(seqs)), f"{who}: ids repeat or go back"
    for seq, _, payload in received:
        assert seq in by_seq, f"{who}: seq {seq} was never stored"
        for name, value in by_seq[seq]["data"].items():
            assert payload[name] == value, f"{who}: seq {seq} differs from the log"
    end = next(e["seq"] for e in stored if e["data"].get("state") in TERMINAL)
    got, last_metric = set(seqs), {}
    for event in stored[:end]:
        if sse_name(event["type"]) == "metric":
            data = event["data"]
            last_metric[(data.get("name") or event["type"], data.get("split") or "")] = event["seq"]
        else:
            near = [seq for seq in seqs if abs(seq - event["seq"]) < 6]
            assert event["seq"] in got, f"{who}: missed {event['seq']} ({event['type']}), {near}"
    for key, seq in last_metric.items():
        assert seq in got, f"{who}: the last {key} (seq {seq}) before the end never arrived"


def test_job_streams_keep_their_promises_under_restarts_and_cancels(
    replicas: tuple[Replica, Replica],
) -> None:
    print(f"soak seed {SEED} ({SECONDS} s): replay with SYNTH_SOAK_SEED={SEED}")
    rng = random.Random(SEED)
    victim, steady = replicas
    urls = [victim.url, steady.url]
    jobs: list[Job] = []
    for index in range(JOBS):
        created = httpx.post(f"{urls[index % 2]}/api/jobs", json={}, headers=HEADERS)
        assert created.status_code == 201, created.text
        cancel_at = rng.uniform(0.2, 0.8) * SECONDS if index % 3 == 0 else None
        jobs.append(Job(created.json()["job_id"], cancel_at))
    kills = sorted(
        (
            rng.uniform(0.1, 0.9) * SECONDS,
            rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGINT]),
        )
        for _ in range(max(2, int(SECONDS // 12)))
    )
    reader_plan = [
        [(rng.uniform(0, 0.5) * SECONDS, urls[r % 2], r % 2 == 0) for r in range(READERS_PER_JOB)]
        for _ in jobs
    ]
    cancel_first = {job.job_id: rng.randrange(2) for job in jobs}
    producer_seeds = [[rng.random() for _ in urls] for _ in jobs]
    emitter_seeds = [rng.random() for _ in jobs]
    print("restarts", [(round(t, 1), how.name) for t, how in kills], [j.cancel_at for j in jobs])

    async def scenario() -> tuple[int, int, list[list[list[tuple[int, str, dict[str, Any]]]]]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop = asyncio.Event()

        async def at(when: float) -> None:
            await asyncio.sleep(max(0.0, started + when - loop.time()))  # the schedule's clock

        async def killer() -> None:
            for when, how in kills:
                await at(when)
                await asyncio.to_thread(victim.restart, how)

        async def canceller(job: Job) -> None:
            assert job.cancel_at is not None
            await at(job.cancel_at)
            first = cancel_first[job.job_id]
            async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
                for attempt in range(200):
                    url = urls[(first + attempt) % 2]
                    try:
                        answer = await bounded(
                            client.post(f"{url}/api/jobs/{job.job_id}/cancel"), "a cancel"
                        )
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)  # a replica restarting: try the other one
                        continue
                    if answer.status_code == 503:  # the log was busy: nothing stored, retry
                        await asyncio.sleep(0.05)
                        continue
                    assert answer.status_code == 200, answer.text
                    job.finished.set()
                    return
            raise AssertionError(f"no replica cancelled {job.job_id}")

        async def reader(when: float, url: str, raw: bool, job_id: str) -> Any:
            await at(when)
            return await (raw_reader if raw else client_reader)(url, job_id)

        emitters = {
            job.job_id: RemoteEmitter(victim.url, job.job_id, KEY, timeout_s=CALL_BOUND_S)
            for job in jobs
            if job.cancel_at is None
        }

        async def emit(job: Job, emitter: RemoteEmitter, pace: random.Random) -> None:
            while not stop.is_set():
                emitter.emit_log(f"emitter-{job.emitted}")
                emitter.emit_metric("reward", float(job.emitted), step=job.emitted)
                job.emitted += 1
                await asyncio.sleep(pace.uniform(0.05, 0.2))  # the loop's pace

        readers = [
            [asyncio.create_task(reader(*plan, job.job_id)) for plan in plans]
            for job, plans in zip(jobs, reader_plan, strict=True)
        ]
        work = [
            asyncio.create_task(
                producer(
                    random.Random(producer_seeds[j][i]), urls[i:] + urls[:i], job, f"p{j}.{i}", stop
                )
            )
            for j, job in enumerate(jobs)
            for i in range(2)
        ]
        work += [
            asyncio.create_task(emit(job, emitters[job.job_id], random.Random(seed)))
            for job, seed in zip(jobs, emitter_seeds, strict=True)
            if job.job_id in emitters
        ]
        side = [asyncio.create_task(killer())]
        side += [asyncio.create_task(canceller(job)) for job in jobs if job.cancel_at is not None]
        await at(SECONDS / 2)
        middle = steady.rss()
        await at(SECONDS)
        stop.set()
        await bounded(asyncio.gather(*work, *side), "producers, cancels and restarts")
        for emitter in emitters.values():
            await bounded(asyncio.to_thread(emitter.close, CALL_BOUND_S), "emitter close")
            stats = emitter.stats
            lost = (stats.queued, stats.dropped_logs, stats.dropped_metrics, stats.discarded)
            assert lost == (0, 0, 0, 0), stats
        for job in jobs:
            if not job.finished.is_set():
                done = [{"type": "job.status", "data": {"state": "succeeded"}}]
                assert await bounded(post(urls, job, done), "final status") is not None
        streams = [
            list(await bounded(asyncio.gather(*tasks), "readers to the end")) for tasks in readers
        ]
        return middle, steady.rss(), streams

    middle, end, streams = asyncio.run(asyncio.wait_for(scenario(), SECONDS * 3 + 4 * CALL_BOUND_S))
    print(
        [(len(j.acknowledged), j.emitted, j.retried) for j in jobs],
        "acknowledged, emitted, retried",
    )
    print(f"steady replica RSS {middle >> 20} MiB at the middle, {end >> 20} MiB at the end")
    assert victim.restarts == len(kills)
    for job, received in zip(jobs, streams, strict=True):
        stored = asyncio.run(stored_events(steady.url, job.job_id))
        assert [event["seq"] for event in stored] == list(range(1, len(stored) + 1))
        ended = next(e["data"]["state"] for e in stored if e["data"].get("state") in TERMINAL)
        for url in urls:  # each replica's snapshot agrees with the log
            snapshot = httpx.get(f"{url}/api/jobs/{job.job_id}", headers=HEADERS).json()
            assert (snapshot["state"], snapshot["last_seq"]) == (ended, len(stored)), url
        by_seq = {event["seq"]: event for event in stored}
        for seq, posted in job.acknowledged.items():  # a 2xx means stored, as posted
            assert by_seq[seq]["type"] == posted["type"]
            assert by_seq[seq]["data"] == posted.get("data", {})
        marks = [e["message"] for e in stored if (e["message"] or "").startswith("emitter-")]
        assert sorted(marks) == sorted(f"emitter-{n}" for n in range(job.emitted))  # each once
        for index, stream in enumerate(received):
            when, url, raw = reader_plan[jobs.index(job)][index]
            who = f"{job.job_id} reader {index} ({'raw' if raw else 'client'} at {when:.1f} s"
            check_reader(stored, stream, f"{who} on {'victim' if url == victim.url else 'steady'})")
    for replica in (victim, steady):
        root = httpx.get(replica.url).json()
        assert root["log_write_errors"] == 0, root
    assert end - middle < RSS_GROWTH_BOUND, f"RSS grew {(end - middle) >> 20} MiB"
