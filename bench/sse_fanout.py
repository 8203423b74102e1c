"""SSE fan-out: many subscribers on one job, emit-to-receive latency, memory with stalled readers.

Goals (DESIGN.md 8): 1,000 subscribers on one job in one process; p99 emit-to-receive under
250 ms at 50 events/s; server memory flat while 100 subscribers stop reading.

Replicas: the same 1,000 subscribers spread evenly over three jobs-server processes on one
PostgreSQL database, the producer posting to one of them, so two thirds of the subscribers get
their events through LISTEN/NOTIFY (a hint, then a read of the new rows by seq); the same goal.
The database is a fresh one on the server of $SYNTH_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped afterwards; without a server the scenario is
skipped with a note.

The producer is open-loop: event i is due at start + i / RATE_HZ whatever the answers to earlier
posts, several posts may be in flight (each on its own keep-alive connection), and the time it
was due goes in the event's data (`t_emit`). Receivers measure from that time, so a late post,
a slow commit and a slow fan-out all count as latency (no coordinated omission). The rate
reached is events over the time from the first due time to the last acknowledgement.

The subscribers are raw asyncio protocols (no HTTP client library) in CLIENT_PROCESSES processes
of their own; each counts its own CPU time, so the table can show the load generator was not
what saturated first. It shares this machine's cores with the servers (and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from textwrap import fill

from bench.durability import checkout, fresh_database, postgres_server, postgres_settings
from bench.harness import cpu_seconds, record, server_process
from bench.sse_load import (
    KEY,
    MAX_POSTS_IN_FLIGHT,
    RATE_HZ,
    SECONDS,
    ClientReport,
    client_process,
    produce,
    stream_request,
)

SUBSCRIBERS = 1000
STALLED = 100
REPLICAS = 3
CLIENT_PROCESSES = 2


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


@dataclass
class FanOut:
    groups: list[ClientReport]  # per URL, over every client process
    rate: float  # events/s from the first due time to the last acknowledgement
    refused: int  # posts not answered 201
    server_cpu: float  # cores busy, all servers together, from all connected to all ended
    client_cpu: list[float]  # cores busy, per client process, over the same time
    acks: list[float]  # ms from each post's due time to its answer (the commit included)
    sent: int = RATE_HZ * SECONDS + 1  # the final status included


def fan_out(urls: list[str], pids: list[int]) -> FanOut:
    """SUBSCRIBERS readers spread evenly over `urls` (served by `pids`) in CLIENT_PROCESSES
    processes, the producer posting to the first URL."""
    addresses = [(h, int(p)) for h, p in (u.removeprefix("http://").split(":") for u in urls)]
    host, port = addresses[0]
    job_id = asyncio.run(request(host, port, "POST", "/api/jobs", {"kind": "custom"}))["job_id"]
    context = multiprocessing.get_context("fork")  # before any loop runs in this process
    clients = []
    for c in range(CLIENT_PROCESSES):
        targets = [
            (n % len(urls), *addresses[n % len(urls)])
            for n in range(c, SUBSCRIBERS, CLIENT_PROCESSES)
        ]
        ours, theirs = context.Pipe()
        process = context.Process(target=client_process, args=(targets, job_id, theirs))
        process.start()
        clients.append((process, ours))
    for _, pipe in clients:
        if not pipe.poll(120) or pipe.recv() != "ready":
            raise RuntimeError("the subscribers did not connect")
    cpu_before = [cpu_seconds(pid) or 0.0 for pid in pids]
    started = time.perf_counter()
    rate, refused, acks = asyncio.run(produce(host, port, job_id))
    results = [pipe.recv() for _, pipe in clients]
    elapsed = time.perf_counter() - started
    server_cpu = sum((cpu_seconds(p) or 0.0) - b for p, b in zip(pids, cpu_before, strict=True))
    for process, _ in clients:
        process.join(30)
    groups = [ClientReport() for _ in urls]
    for reports, _ in results:
        for at, report in reports.items():
            group = groups[at]
            group.latencies += report.latencies
            group.streams += report.streams
            group.received += report.received
            group.out_of_order += report.out_of_order
            group.unclean += report.unclean
    shares = [share for _, share in results]
    return FanOut(groups, rate, refused, server_cpu / elapsed, shares, acks)


def merged(groups: list[ClientReport]) -> ClientReport:
    return ClientReport(
        [ms for g in groups for ms in g.latencies],
        sum(g.streams for g in groups),
        sum(g.received for g in groups),
        sum(g.out_of_order for g in groups),
        sum(g.unclean for g in groups),
    )


# --- memory with stalled readers ---------------------------------------------------------------


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


# --- the report --------------------------------------------------------------------------------


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 (NaN when nothing arrived)."""
    if not latencies:
        return float("nan"), float("nan")
    ordered = sorted(latencies)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def row(scenario: str, group: ClientReport, run: FanOut) -> str:
    p50, p99 = percentiles(group.latencies)
    clients = " + ".join(f"{share:.2f}" for share in run.client_cpu)
    return (
        f"| {scenario} | {group.streams} | {run.rate:.1f} | {group.received} "
        f"| {run.sent * group.streams} | {group.out_of_order} | {p50:.1f} | {p99:.1f} "
        f"| {percentiles(run.acks)[1]:.1f} | {run.server_cpu:.2f} | {clients} |"
    )


def verdict(name: str, group: ClientReport, run: FanOut) -> str:
    """The goal: p99 < 250 ms with every event delivered, in order, at RATE_HZ (95% counts)."""
    p50, p99 = percentiles(group.latencies)
    expected = run.sent * group.streams
    misses = [
        *([] if p99 < 250 else ["p99"]),
        *([] if group.received >= expected else ["events missing"]),
        *([] if not group.out_of_order else ["events out of order"]),
        *([] if not (group.unclean or run.refused) else ["streams or posts failed"]),
        *([] if run.rate >= 0.95 * RATE_HZ else [f"{run.rate:.1f} events/s, not {RATE_HZ}"]),
    ]
    result = "goal met" if not misses else f"goal misses: {'; '.join(misses)}"
    print(
        f"{name}: {run.rate:.1f} events/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, delivered "
        f"{group.received}/{expected}, posts answered p99 {percentiles(run.acks)[1]:.1f} ms, "
        f"servers {run.server_cpu:.2f} cores, load generator {sum(run.client_cpu):.2f} cores: "
        f"{result}"
    )
    return f"**{name}: p99 emit-to-receive {p99:.0f} ms at {run.rate:.1f} events/s** ({result})."


HEADER = (
    "| server | subscribers | events/s | delivered | expected | out of order | p50 ms | p99 ms "
    "| post p99 ms | server cores | load-gen cores |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def served(factory: object, env: dict[str, str], stack: ExitStack) -> tuple[str, int]:
    """A forked server and its pid."""
    known = set(multiprocessing.active_children())
    url = stack.enter_context(server_process(factory, env))  # type: ignore[arg-type]
    return url, next(p for p in multiprocessing.active_children() if p not in known).pid or 0


def main() -> None:
    env = {"ENVIRONMENT_API_KEY": KEY}
    with ExitStack() as stack:
        url, pid = served(jobs_app, env, stack)
        one = fan_out([url], [pid])
        before, middle, after = stalled_memory(url, pid)
    rows = [row("one process (SQLite)", one.groups[0], one)]
    verdicts = [verdict("One process", one.groups[0], one)]

    settings = postgres_settings()
    if settings is None:
        replicas = (
            f"The replicas scenario was not measured: no PostgreSQL answered at "
            f"{postgres_server()} (set SYNTH_BENCH_POSTGRES_URL), or psycopg is not installed."
        )
    else:
        with fresh_database() as db, ExitStack() as stack:
            servers = [served(lambda: jobs_app(db), env, stack) for _ in range(REPLICAS)]
            run = fan_out([u for u, _ in servers], [p for _, p in servers])
        everyone, others = merged(run.groups), merged(run.groups[1:])
        rows += [
            row(f"{REPLICAS} replicas (PostgreSQL), all", everyone, run),
            row("... on the producer's replica", run.groups[0], run),
            row(f"... on the other {REPLICAS - 1} (LISTEN/NOTIFY)", others, run),
        ]
        verdicts += [
            verdict(f"{REPLICAS} replicas", everyone, run),
            verdict("Through LISTEN/NOTIFY alone", others, run),
        ]
        replicas = (
            f"Replicas: the same job and load with the {SUBSCRIBERS} subscribers spread evenly "
            f"over {REPLICAS} jobs-server processes on one database, the producer posting to one "
            f"of them: the other {REPLICAS - 1} hear of each commit through LISTEN/NOTIFY and "
            f"read the new rows by seq. {settings}, on this machine."
        )
    table = "\n".join(rows)
    summary = "\n".join(verdicts)
    intro = (
        f"One job, {SUBSCRIBERS} subscribers, an open-loop producer: event i is posted when due "
        f"(start + i/{RATE_HZ} s) whatever the answers to earlier posts, up to "
        f"{MAX_POSTS_IN_FLIGHT} in flight, {RATE_HZ * SECONDS} events and a final status. "
        "Latency is from the time an event was due (carried in its data) to its receipt, so "
        "a late post, the commit and the fan-out all count; events/s is from the first due "
        "time to the last acknowledgement. The subscribers are raw asyncio protocols under "
        f"uvloop in {CLIENT_PROCESSES} processes of their own, each checking that ids arrive "
        "in order with none missing. Servers, load generator (and PostgreSQL) share the "
        "machine's 2 cores: the CPU columns say how many cores each used over the run "
        f"(server: all replicas together). This checkout was {checkout()}."
    )
    record(
        "sse fan-out",
        f"""
{fill(intro, 96)}

{fill(replicas, 96)}

{HEADER}
{table}

Goal: p99 < 250 ms at {RATE_HZ} events/s with every event delivered, in order.
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
