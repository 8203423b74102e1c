"""Shared bench parts: servers in their own processes, an asyncio load generator, results."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.serve_app import serve
from synth_ai.task.serving import listening_socket

RESULTS = Path(__file__).with_name("RESULTS.md")


def _serve(factory: Callable[[], Any], sock: socket.socket) -> None:
    serve(factory(), sock)


@contextmanager
def server_process(factory: Callable[[], Any], env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve `factory()` from a forked process; the socket listens before the fork, so the URL
    works at once. `env` is applied in the child only."""
    sock = listening_socket()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        process = multiprocessing.get_context("fork").Process(target=_serve, args=(factory, sock))
        process.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        process.terminate()
        process.join(30)
        sock.close()


@contextmanager
def command_server(
    spec: str,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stderr: Any = None,
) -> Iterator[tuple[str, str]]:
    """Serve `module:factory(*args)` from a fresh interpreter (this venv's python) through
    serve_app.py, e.g. another checkout of the code put first on PYTHONPATH by `env`, which is
    added to this process's environment. The socket listens before the start, as with
    `server_process`. Yields the URL and the file the child imported the factory's top-level
    package from. `stderr` is the child's (as for `subprocess.Popen`; default: this one's)."""
    sock = listening_socket()
    script = Path(__file__).with_name("serve_app.py")
    process = subprocess.Popen(
        [sys.executable, str(script), str(sock.fileno()), spec, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        pass_fds=(sock.fileno(),),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert process.stdout is not None
        origin = process.stdout.readline().strip()
        if not origin:
            raise RuntimeError(f"{spec} did not start (exit status {process.wait(30)})")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", origin
    finally:
        process.terminate()
        process.wait(30)
        sock.close()


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    statuses: Counter[int]  # of every response, warm-up and drain included

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


def _encode(method: str, host: str, path: str, headers: dict[str, str], body: Any) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(payload)}"]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _load(
    url: str,
    method: str,
    path: str,
    body: Callable[[int], Any] | None,
    headers: dict[str, str],
    concurrency: int,
    warmup_s: float,
    duration_s: float,
) -> LoadResult:
    """A keep-alive HTTP/1.1 client on raw asyncio streams: light enough that the load
    generator, not the server, is never what saturates first (httpx is, past ~8 clients)."""
    host_port = url.split("//", 1)[1]
    host, port = host_port.rsplit(":", 1)
    counter = 0
    measuring = False
    stop = False
    latencies: list[float] = []
    errors = 0
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        nonlocal counter, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while not stop:
                counter += 1
                request = _encode(method, host_port, path, headers, body(counter) if body else None)
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                statuses[status] += 1
                if measuring:
                    latencies.append((time.perf_counter() - started) * 1000)
                    if not 200 <= status < 300:
                        errors += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup_s)
    measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration_s)
    measuring = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*tasks)
    return LoadResult(len(latencies), errors, elapsed, latencies, statuses)


def load(
    url: str,
    path: str,
    *,
    method: str = "GET",
    body: Callable[[int], Any] | None = None,
    headers: dict[str, str] | None = None,
    concurrency: int = 32,
    warmup_s: float = 2.0,
    duration_s: float = 8.0,
) -> LoadResult:
    """Closed-loop load: `concurrency` clients send back to back; counts what completes while
    measuring (after a warm-up)."""
    return asyncio.run(
        _load(url, method, path, body, headers or {}, concurrency, warmup_s, duration_s)
    )


def median_run(runs: list[LoadResult]) -> LoadResult:
    """The run with the median throughput."""
    return sorted(runs, key=lambda run: run.rps)[len(runs) // 2]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def record(name: str, markdown: str) -> None:
    """Replace this benchmark's section of RESULTS.md (other sections are kept)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {name}\n\n_Measured {stamp} on {machine()}._\n\n"
        f"{markdown.strip()}\n<!-- /bench:{name} -->"
    )
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    RESULTS.write_text(text)
