"""SSE fan-out: many subscribers on one job, emit-to-receive latency, memory with stalled readers.

Goals (DESIGN.md 8): 1,000 subscribers on one job in one process; p99 emit-to-receive under
250 ms at 50 events/s; server memory flat while 100 subscribers stop reading.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import time
from pathlib import Path

from bench.harness import record, server_process

KEY = "bench-key"
SUBSCRIBERS = 1000
RATE_HZ = 50
SECONDS = 10
STALLED = 100


def jobs_app() -> object:
    from synth_ai.jobs import StreamSettings, create_jobs_app

    settings = StreamSettings(
        max_clients_per_job=5000, max_clients=10000, end_grace_s=0.2, send_timeout_s=120.0
    )
    return create_jobs_app(Path(tempfile.mkdtemp()) / "jobs.db", settings=settings)


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


async def fan_out(url: str) -> tuple[list[float], int]:
    host, port = url.removeprefix("http://").split(":")
    job = await request(host, int(port), "POST", "/api/jobs", {"kind": "custom"})
    job_id = job["job_id"]
    latencies: list[float] = []
    connected = asyncio.Event()
    counter = [0]
    readers = [
        asyncio.create_task(subscriber(host, int(port), job_id, latencies, connected, counter))
        for _ in range(SUBSCRIBERS)
    ]
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
    writer.close()
    await request(
        host,
        int(port),
        "POST",
        f"/api/jobs/{job_id}/events",
        {"type": "job.status", "data": {"state": "succeeded"}},
    )
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    return latencies, RATE_HZ * SECONDS + 1  # and the final status


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


def main() -> None:
    import multiprocessing

    known = set(multiprocessing.active_children())
    with server_process(jobs_app, {"ENVIRONMENT_API_KEY": KEY}) as url:
        pid = next(p for p in multiprocessing.active_children() if p not in known).pid
        latencies, sent = asyncio.run(fan_out(url))
        before, middle, after = stalled_memory(url, pid)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    expected = sent * SUBSCRIBERS
    verdict = "meets" if p99 < 250 and len(latencies) >= expected else "misses"
    record(
        "sse fan-out",
        f"""
One job, {SUBSCRIBERS} subscribers on raw keep-alive connections, a producer posting
{RATE_HZ} events/s for {SECONDS} s; latency from the server's emit timestamp to receipt.

| subscribers | events delivered | expected | p50 ms | p99 ms |
|---|---|---|---|---|
| {SUBSCRIBERS} | {len(latencies)} | {expected} | {p50:.1f} | {p99:.1f} |

**p99 emit-to-receive {p99:.0f} ms** (goal < 250 ms: {verdict}).

{STALLED} subscribers that never read while 100 batches of 100 x 4 KiB events are emitted
(40 MB offered to each): server RSS {before:.0f} MB before, {middle:.0f} MB halfway,
{after:.0f} MB after (growth in the second half: {after - middle:+.0f} MB).
""",
    )
    print(
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, delivered {len(latencies)}/{expected}; "
        f"RSS {before:.0f} -> {middle:.0f} -> {after:.0f} MB"
    )


if __name__ == "__main__":
    os.environ.setdefault("ENVIRONMENT_API_KEY", KEY)
    main()
