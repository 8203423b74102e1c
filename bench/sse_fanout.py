"""SSE fan-out: many subscribers on one job, emit-to-receive latency, memory with stalled readers.

Goals (DESIGN.md 8): 1,000 subscribers on one job in one process; p99 emit-to-receive under
250 ms at 50 events/s; server memory flat while 100 subscribers stop reading.

Replicas: the same 1,000 subscribers spread evenly over three jobs-server processes on one
PostgreSQL database, the producer posting to one of them, so two thirds of the subscribers get
their events through LISTEN/NOTIFY (a hint, then a read of the new rows by seq); the same goal.
The database is a fresh one on the server of $SYNTH_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped afterwards; without a server the scenario is
skipped with a note.

The producer posts one event at a time and waits for each answer, as an API client does, so a
server too busy to keep up slows it rather than falling behind: the rate it reached is recorded
and counts towards the goal (latency alone would look fine at a lower rate).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from textwrap import fill

from bench.durability import checkout, fresh_database, postgres_server, postgres_settings
from bench.harness import record, server_process

KEY = "bench-key"
SUBSCRIBERS = 1000
RATE_HZ = 50
SECONDS = 10
STALLED = 100
REPLICAS = 3


def jobs_app(db: str | None = None) -> object:
    """A jobs server over `db` (a postgresql:// URL), else a SQLite file in a new temp dir."""
    from synth_ai.jobs import StreamSettings, create_jobs_app

    settings = StreamSettings(
        max_clients_per_job=5000, max_clients=10000, end_grace_s=0.2, send_timeout_s=120.0
    )
    folder = Path(tempfile.mkdtemp())
    if db is None:
        return create_jobs_app(folder / "jobs.db", settings=settings)
    return create_jobs_app(db, settings=settings, artifacts_dir=folder / "artifacts")


def stream_request(job_id: str) -> bytes:
    return f"GET /api/jobs/{job_id}/stream HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n".encode()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def request(host: str, port: int, method: str, path: str, body: dict | None = None) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    response = await reader.read()
    writer.close()
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


async def subscriber(
    host: str,
    port: int,
    job_id: str,
    latencies: list[float],
    connected: asyncio.Event,
    counter: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    writer.write(stream_request(job_id))
    await reader.readuntil(b"\r\n\r\n")
    counter[0] += 1
    if counter[0] == SUBSCRIBERS:
        connected.set()
    while True:
        line = await reader.readline()
        if not line or line.startswith(b"event: end"):
            break
        start = line.find(b',"ts":') if line.startswith(b"data: {") else -1
        if start >= 0:  # a job event: the payload, then "ts", "seq", "type", "job_id"
            ts = float(line[start + 6 : line.index(b",", start + 6)])
            latencies.append((time.time() - ts) * 1000)
    writer.close()


@dataclass
class FanOut:
    latencies: list[list[float]]  # ms, as seen by the readers of each URL
    sent: int  # events, the final status included
    posting_s: float  # from the first post to the last post's answer

    @property
    def rate(self) -> float:
        """Events per second the producer achieved. It posts one event at a time and waits
        for the answer (as a client of the API does), so a server that cannot keep up slows it
        below RATE_HZ instead of falling behind: latency then looks fine at a lower rate."""
        return (self.sent - 1) / self.posting_s


async def fan_out(urls: list[str]) -> FanOut:
    """SUBSCRIBERS readers spread evenly over `urls`, the producer posting to the first."""
    addresses = [url.removeprefix("http://").split(":") for url in urls]
    host, port = addresses[0]
    job = await request(host, int(port), "POST", "/api/jobs", {"kind": "custom"})
    job_id = job["job_id"]
    latencies: list[list[float]] = [[] for _ in urls]
    connected = asyncio.Event()
    counter = [0]
    readers = []
    for n in range(SUBSCRIBERS):
        at = n % len(urls)
        reader_host, reader_port = addresses[at]
        readers.append(
            asyncio.create_task(
                subscriber(reader_host, int(reader_port), job_id, latencies[at], connected, counter)
            )
        )
    await asyncio.wait_for(connected.wait(), 120)
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.perf_counter()
    for i in range(RATE_HZ * SECONDS):
        body = json.dumps({"type": "system.log", "message": f"event {i}"}).encode()
        writer.write(
            f"POST /api/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        await asyncio.sleep(max(0.0, started + (i + 1) / RATE_HZ - time.perf_counter()))
    posting_s = time.perf_counter() - started
    writer.close()
    await request(
        host,
        int(port),
        "POST",
        f"/api/jobs/{job_id}/events",
        {"type": "job.status", "data": {"state": "succeeded"}},
    )
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    return FanOut(latencies, RATE_HZ * SECONDS + 1, posting_s)  # sent: and the final status


def stalled_memory(url: str, pid: int) -> tuple[float, float, float]:
    host, port = url.removeprefix("http://").split(":")
    job_id = asyncio.run(request(host, int(port), "POST", "/api/jobs", {"kind": "custom"}))[
        "job_id"
    ]
    sockets = []
    for _ in range(STALLED):
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(stream_request(job_id))
        sockets.append(sock)
    before = rss_mb(pid)

    async def produce(rounds: int) -> None:
        for _ in range(rounds):
            await request(
                host,
                int(port),
                "POST",
                f"/api/jobs/{job_id}/events",
                {"events": [{"type": "system.log", "message": "x" * 4096} for _ in range(100)]},
            )

    asyncio.run(produce(50))  # 20 MB of events per reader, none of it read
    middle = rss_mb(pid)
    asyncio.run(produce(50))
    after = rss_mb(pid)
    for sock in sockets:
        sock.close()
    return before, middle, after


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 (NaN when nothing arrived)."""
    if not latencies:
        return float("nan"), float("nan")
    ordered = sorted(latencies)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def replicas_fan_out(env: dict[str, str]) -> FanOut:
    """`fan_out` over REPLICAS servers on one fresh PostgreSQL database."""
    with fresh_database() as db, ExitStack() as servers:
        urls = [
            servers.enter_context(server_process(lambda: jobs_app(db), env))
            for _ in range(REPLICAS)
        ]
        return asyncio.run(fan_out(urls))


def row(scenario: str, subscribers: int, latencies: list[float], run: FanOut) -> str:
    p50, p99 = percentiles(latencies)
    expected = run.sent * subscribers
    return (
        f"| {scenario} | {subscribers} | {run.rate:.1f} | {len(latencies)} | {expected} "
        f"| {p50:.1f} | {p99:.1f} |"
    )


def verdict(name: str, latencies: list[float], subscribers: int, run: FanOut) -> str:
    """The goal: p99 < 250 ms with every event delivered, at RATE_HZ (95% of it counts)."""
    p50, p99 = percentiles(latencies)
    delivered = len(latencies) >= run.sent * subscribers
    rate = run.rate >= 0.95 * RATE_HZ
    misses = [
        *([] if p99 < 250 else ["p99"]),
        *([] if delivered else ["events missing"]),
        *([] if rate else [f"the producer reached {run.rate:.1f} events/s, not {RATE_HZ}"]),
    ]
    result = "meets" if not misses else f"misses: {'; '.join(misses)}"
    print(
        f"{name}: {run.rate:.1f} events/s posted, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"delivered {len(latencies)}/{run.sent * subscribers}"
    )
    return f"**{name}: p99 emit-to-receive {p99:.0f} ms at {run.rate:.1f} events/s** ({result})."


def main() -> None:
    import multiprocessing

    env = {"ENVIRONMENT_API_KEY": KEY}
    known = set(multiprocessing.active_children())
    with server_process(jobs_app, env) as url:
        pid = next(p for p in multiprocessing.active_children() if p not in known).pid
        one = asyncio.run(fan_out([url]))
        before, middle, after = stalled_memory(url, pid)
    (latencies,) = one.latencies
    rows = [row("one process (SQLite)", SUBSCRIBERS, latencies, one)]
    verdicts = [verdict("One process", latencies, SUBSCRIBERS, one)]

    settings = postgres_settings()
    if settings is None:
        replicas = (
            f"The replicas scenario was not measured: no PostgreSQL answered at "
            f"{postgres_server()} (set SYNTH_BENCH_POSTGRES_URL), or psycopg is not installed."
        )
    else:
        run = replicas_fan_out(env)
        counts = [len(range(n, SUBSCRIBERS, REPLICAS)) for n in range(REPLICAS)]
        everyone = [ms for group in run.latencies for ms in group]
        others = [ms for group in run.latencies[1:] for ms in group]
        rows += [
            row(f"{REPLICAS} replicas (PostgreSQL), all", SUBSCRIBERS, everyone, run),
            row("... on the producer's replica", counts[0], run.latencies[0], run),
            row(f"... on the other {REPLICAS - 1} (LISTEN/NOTIFY)", sum(counts[1:]), others, run),
        ]
        verdicts += [
            verdict(f"{REPLICAS} replicas", everyone, SUBSCRIBERS, run),
            verdict("Through LISTEN/NOTIFY alone", others, sum(counts[1:]), run),
        ]
        replicas = (
            f"Replicas: the same job and load with the {SUBSCRIBERS} subscribers spread evenly "
            f"over {REPLICAS} jobs-server processes on one database, the producer posting to one "
            f"of them: the other {REPLICAS - 1} hear of each commit through LISTEN/NOTIFY and "
            f"read the new rows by seq. {settings}, on this machine; the servers, PostgreSQL and "
            "the load generator share its cores."
        )
    table = "\n".join(rows)
    summary = "\n".join(verdicts)
    intro = (
        f"One job, {SUBSCRIBERS} subscribers on raw keep-alive connections, a producer posting "
        f"up to {RATE_HZ} events/s for {RATE_HZ * SECONDS} events, one at a time, each after the "
        'last one\'s answer (so a server that cannot keep up slows the producer: "posted/s" '
        "is the rate reached); latency from the server's emit timestamp to receipt; the "
        f"servers forked as the other benches' are. This checkout was {checkout()}."
    )
    record(
        "sse fan-out",
        f"""
{fill(intro, 96)}

{fill(replicas, 96)}

| server | subscribers | posted/s | events delivered | expected | p50 ms | p99 ms |
|---|---|---|---|---|---|---|
{table}

Goal: p99 < 250 ms at {RATE_HZ} events/s with every event delivered.
{summary}

{STALLED} subscribers that never read while 100 batches of 100 x 4 KiB events are emitted
(40 MB offered to each) to the one-process server: server RSS {before:.0f} MB before,
{middle:.0f} MB halfway, {after:.0f} MB after (growth in the second half: {after - middle:+.0f} MB).
""",
    )
    print(f"RSS {before:.0f} -> {middle:.0f} -> {after:.0f} MB")


if __name__ == "__main__":
    os.environ.setdefault("ENVIRONMENT_API_KEY", KEY)
    main()
