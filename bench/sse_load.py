"""The SSE fan-out bench's load generator: subscribers in processes of their own, a producer.

Subscribers are raw asyncio protocols (no HTTP client library, no StreamReader) under uvloop:
each parses frames as they arrive, checks that ids come in order with none missing, and takes
the latency from the `t_emit` the producer put in the event's data. The producer is open-loop:
event i is posted when due, whatever the answers to earlier posts.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

KEY = "bench-key"
RATE_HZ = 50
SECONDS = 10
MAX_POSTS_IN_FLIGHT = 64


def stream_request(job_id: str) -> bytes:
    return f"GET /api/jobs/{job_id}/stream HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n".encode()


def post_request(path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return int(head[9:12]), await reader.readexactly(length)


class Subscriber(asyncio.Protocol):
    """One stream, parsed as it arrives: every frame's `id` (which must be the last one + 1:
    in order, none missing) and its `t_emit`. Cheaper than a StreamReader and readline."""

    def __init__(self, request: bytes, latencies: list[float], done: asyncio.Future[None]) -> None:
        self.request = request
        self.latencies = latencies
        self.done = done
        self.head = asyncio.get_running_loop().create_future()
        self.rest = b""
        self.last = 0
        self.received = self.out_of_order = 0
        self.ended = ""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.rest + data if self.rest else data
        if not self.head.done():
            if not buf.startswith(b"HTTP/1.1 200"):
                self.head.set_exception(RuntimeError(buf[:200].decode(errors="replace")))
                return
            self.head.set_result(None)
        end = buf.rfind(b"\n\n") + 2
        self.rest = buf[end:]
        pos = buf.find(b"id: ", 0, end)
        while pos >= 0:  # frames: "id: N\nevent: log\ndata: {...}\n\n" (chunk sizes between)
            stop = buf.find(b"\n\n", pos)
            seq = int(buf[pos + 4 : buf.find(b"\n", pos)])
            if seq != self.last + 1:
                self.out_of_order += 1
            self.last = seq
            self.received += 1
            at = buf.find(b'"t_emit":', pos, stop)
            if at >= 0:
                at += 9
                self.latencies.append((now - float(buf[at : buf.find(b",", at)])) * 1000)
            pos = buf.find(b"id: ", stop, end)
        for name in (b"event: end", b"event: lagged", b"event: reset"):
            if name in buf[:end]:
                self.ended = name.decode()[7:]
                assert self.transport is not None
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(exc or ConnectionError("closed before the head"))
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class ClientReport:
    """What the streams of one client process to one URL saw."""

    latencies: list[float] = field(default_factory=list)  # ms
    streams: int = 0
    received: int = 0  # frames with an id
    out_of_order: int = 0  # frames whose id was not the previous one + 1
    unclean: int = 0  # streams that ended other than with `end` (lagged, reset, cut)


def client_process(targets: list[tuple[int, str, int]], job_id: str, pipe: Connection) -> None:
    """One stream to each (url index, host, port) of `targets`; says "ready" once all are
    connected, then sends its reports per URL and its CPU share once all have ended."""
    try:
        import uvloop

        uvloop.install()  # the cheapest loop there is: the load generator must not saturate
    except ImportError:
        pass

    async def run() -> tuple[dict[int, ClientReport], float]:
        loop = asyncio.get_running_loop()
        reports: dict[int, ClientReport] = {}
        streams: list[tuple[int, Subscriber]] = []
        request = stream_request(job_id)
        for at, host, port in targets:
            report = reports.setdefault(at, ClientReport())
            done = loop.create_future()
            _, stream = await loop.create_connection(
                lambda r=report, d=done: Subscriber(request, r.latencies, d),  # type: ignore[misc]
                host,
                port,
            )
            streams.append((at, stream))
        await asyncio.gather(*(s.head for _, s in streams))
        pipe.send("ready")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(s.done for _, s in streams)), 300)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        for at, stream in streams:
            report = reports[at]
            report.streams += 1
            report.received += stream.received
            report.out_of_order += stream.out_of_order
            report.unclean += stream.ended != "end"
        return reports, cpu / wall

    pipe.send(asyncio.run(run()))


# --- the producer ------------------------------------------------------------------------------


async def produce(host: str, port: int, job_id: str) -> tuple[float, int, list[float]]:
    """Post RATE_HZ * SECONDS events on schedule, then the final status; answers the rate
    reached, how many posts were refused, and each post's time from due to answer (ms).
    Posts go out when due, on whichever keep-alive connection is free (a new one when none
    is, up to MAX_POSTS_IN_FLIGHT)."""
    free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    slots = asyncio.Semaphore(MAX_POSTS_IN_FLIGHT)
    refused = 0
    acks: list[float] = []
    path = f"/api/jobs/{job_id}/events"

    async def post(body: dict, due: float) -> float:
        nonlocal refused
        async with slots:
            # the server closes keep-alive connections idle for 5 s: never reuse one near that
            while free and free[-1][2] < time.monotonic() - 2:
                free.pop()[1].close()
            if free:
                reader, writer, _ = free.pop()
            else:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(post_request(path, body))
            status, _ = await read_response(reader)
            refused += status != 201
            free.append((reader, writer, time.monotonic()))
            answered = time.time()
            acks.append((answered - due) * 1000)
            return answered

    count = RATE_HZ * SECONDS
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    wall_start = time.time() + (start - loop.time())
    posts = []
    for i in range(count + 1):
        await asyncio.sleep(max(0.0, start + i / RATE_HZ - loop.time()))
        due = wall_start + i / RATE_HZ
        data = {"t_emit": due}
        body: dict = {"type": "system.log", "data": data}
        if i == count:  # the last one ends the job (and every stream, after the grace)
            body = {"type": "job.status", "data": {"state": "succeeded", **data}}
        posts.append(asyncio.create_task(post(body, due)))
    acknowledged = await asyncio.gather(*posts)
    for _, writer, _ in free:
        writer.close()
    return count / (max(acknowledged) - wall_start), refused, acks
