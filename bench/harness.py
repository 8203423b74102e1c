"""Shared bench parts: servers in their own processes, an asyncio load generator, results."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.serve_app import serve
from synth_ai.task.serving import listening_socket

if TYPE_CHECKING:
    from synth_ai.eval import EvalSummary

RESULTS = Path(__file__).with_name("RESULTS.md")
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).with_name(".cache")


def fresh_install(extras: str = "") -> Path:
    """The python of a new virtualenv holding this checkout installed as a user installs it
    (built, not editable; `extras` such as "modal"): what the user's process loads, and no
    more than that. Remade on every call, so it is never older than the checkout."""
    venv = CACHE / (f"install-{extras}" if extras else "install")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    requirement = f"{ROOT}[{extras}]" if extras else str(ROOT)
    subprocess.run([str(python), "-m", "pip", "install", "-q", requirement], check=True)
    return python


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


SERVER_CORE, LOAD_CORE = 0, 1
"""Where `pinning()` puts servers and load generators: apart, so neither slows the other."""


def pinning() -> bool:
    """Whether servers and load generators can each have a core of their own."""
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def _pin_server() -> None:
    if pinning():
        os.sched_setaffinity(0, {SERVER_CORE})


@dataclass(frozen=True)
class ServerSetup:
    """uvicorn's event loop and HTTP parser for a server started through serve_app.py."""

    label: str
    loop: str
    http: str

    @property
    def env(self) -> dict[str, str]:
        return {"BENCH_UVICORN_LOOP": self.loop, "BENCH_UVICORN_HTTP": self.http}


PURE = ServerSetup("asyncio + h11", "asyncio", "h11")
FAST = ServerSetup("uvloop + httptools", "uvloop", "httptools")


@dataclass(frozen=True)
class Served:
    """A server in its own process: where it listens, and its pid (for its CPU time)."""

    url: str
    pid: int


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def forked_server(factory: Callable[[], Any], env: dict[str, str]) -> Iterator[Served]:
    """`factory()` served from a fork of this process, moved to the server core."""
    pid = multiprocessing.Value("i", 0)  # shared memory: the child writes its pid here

    def make() -> Any:
        pid.value = os.getpid()
        _pin_server()
        return factory()

    with server_process(make, env) as url:
        deadline = time.monotonic() + 30
        while not pid.value and time.monotonic() < deadline:
            time.sleep(0.01)
        yield Served(url, pid.value)


@contextmanager
def foreign_server(
    python: Path, spec: str, env: dict[str, str], wrapper: tuple[str, ...] = ()
) -> Iterator[Served]:
    """Serve `spec` (module:factory in bench/) from another interpreter via serve_app.py, on
    the server core; the socket listens before the start, so the URL works at once. `wrapper`
    runs the interpreter under another program that becomes it (valgrind), pid and all."""
    sock = listening_socket()
    script = Path(__file__).with_name("serve_app.py")
    process = subprocess.Popen(
        [*wrapper, str(python), str(script), str(sock.fileno()), spec],
        env={**os.environ, **env},
        pass_fds=(sock.fileno(),),
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_pin_server,
    )
    try:
        assert process.stdout is not None
        if not process.stdout.readline().strip():
            raise RuntimeError(f"{spec} did not start (exit status {process.wait(30)})")
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", process.pid)
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


def send_requests(
    url: str,
    path: str,
    count: int,
    *,
    body: Callable[[int], Any],
    headers: dict[str, str] | None = None,
    concurrency: int = 32,
) -> Counter[int]:
    """POST `count` requests over `concurrency` keep-alive connections; the statuses answered."""
    host_port = url.split("//", 1)[1]
    host, port = host_port.rsplit(":", 1)
    statuses: Counter[int] = Counter()
    sent = 0

    async def worker() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while sent < count:
                sent += 1
                writer.write(_encode("POST", host_port, path, headers or {}, body(sent)))
                statuses[await _read_response(reader)] += 1
        finally:
            writer.close()

    async def run() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(run())
    return statuses


def callgrind_available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def instructions_per_request(
    python: Path,
    spec: str,
    env: dict[str, str],
    path: str,
    *,
    body: Callable[[int], Any],
    headers: dict[str, str] | None = None,
    requests: int = 400,
    warmup: int = 200,
) -> float:
    """Instructions the server process runs per request, counted by valgrind's callgrind.

    Unlike time, the count does not move with whatever else the machine runs: the same server,
    inputs and load give the same count to a fraction of a percent. Counted from after a
    warm-up to after `requests` more (callgrind_control zeroes, then dumps); kernel work (the
    sockets' system calls) is not counted.
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        wrapper = ("valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out}")
        with foreign_server(python, spec, env, wrapper) as served:
            send_requests(served.url, path, warmup, body=body, headers=headers)
            control = ["callgrind_control"]
            subprocess.run([*control, "--zero", str(served.pid)], check=True, capture_output=True)
            statuses = send_requests(served.url, path, requests, body=body, headers=headers)
            subprocess.run([*control, "--dump", str(served.pid)], check=True, capture_output=True)
            dump = Path(f"{out}.1").read_text()
        if set(statuses) != {200}:
            raise RuntimeError(f"{spec} answered {dict(statuses)} under callgrind")
        total = re.search(r"^(?:totals|summary):\s*(\d+)", dump, re.M)
        if total is None:
            raise RuntimeError(f"no instruction total in callgrind's dump for {spec}")
        return int(total[1]) / requests


def load_all(
    targets: list[tuple[str, Callable[[int], Any] | None]],
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    concurrency: int = 32,
    warmup_s: float = 2.0,
    duration_s: float = 8.0,
) -> list[LoadResult]:
    """`load` on several servers at once, over the same window from one event loop: each
    target is a URL and its body function, each driven by `concurrency` clients."""

    async def run() -> list[LoadResult]:
        return await asyncio.gather(
            *(
                _load(url, method, path, body, headers or {}, concurrency, warmup_s, duration_s)
                for url, body in targets
            )
        )

    return asyncio.run(run())


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors
    requests: int  # every request, warm-up included


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_latency_ms(text: str, percent: str) -> float:
    found = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(found[1]) * _WRK_UNITS[found[2]] if found else float("nan")


def wrk_load(
    url: str,
    path: str,
    *,
    body: Any,
    headers: dict[str, str] | None = None,
    concurrency: int = 32,
    warmup_s: float = 2.0,
    duration_s: float = 8.0,
) -> WrkResult:
    """`load`'s cross-check: wrk (one thread, `concurrency` connections) POSTing the same JSON
    body every time, after a warm-up run of its own. Needs the `wrk` binary on PATH."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(body))}",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items()),
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("\n".join(lines) + "\n")
        script.flush()

        def run(seconds: float) -> str:
            # wrk takes whole seconds
            command = [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
            ]
            command += ["-s", script.name, url + path]
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout

        warmup = run(warmup_s)
        out = run(duration_s)
    done = [re.search(r"(\d+) requests in", text) for text in (warmup, out)]
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", out)
    errors = int(non_2xx[1]) if non_2xx else 0
    errors += sum(map(int, socket_errors.groups())) if socket_errors else 0
    return WrkResult(
        float(rps[1]) if rps else 0.0,
        _wrk_latency_ms(out, "50"),
        _wrk_latency_ms(out, "99"),
        errors,
        sum(int(found[1]) for found in done if found),
    )


def in_process_us(app: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> float:
    """CPU microseconds per POST of a JSON body to an ASGI app called directly (best of five
    runs of 3,000): the app's own work, without a server, sockets or a load generator."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-length", str(len(raw)).encode()),
            (b"content-type", b"application/json"),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def one() -> None:
        delivered = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.Event().wait()  # the client stays connected
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            status = message.get("status", status)

        await app(dict(scope, state={}), receive, send)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")

    async def run(n: int) -> float:
        started = time.process_time()  # CPU time: a busy machine's preemptions do not count
        for _ in range(n):
            await one()
        return (time.process_time() - started) / n * 1e6

    async def best() -> float:
        await run(500)
        return min([await run(3000) for _ in range(5)])

    return asyncio.run(best())


async def eval_rate(
    app_url: str, inference_url: str, api_key: str, seeds: int, concurrency: int
) -> tuple[float, EvalSummary]:
    """One `run_eval` on this loop, the offline policy answering: rollouts/s and the summary.
    Every seed must score 1 (the math app with that policy), so a broken path cannot pass."""
    from synth_ai.eval import EvalConfig, run_eval

    config = EvalConfig(
        task_app_url=app_url,
        api_key=api_key,
        seeds=list(range(seeds)),
        model="offline-policy",
        inference_url=inference_url,
        concurrency=concurrency,
    )
    started = time.perf_counter()
    _, summary = await run_eval(config)
    elapsed = time.perf_counter() - started
    assert summary.completed == seeds and summary.mean_reward == 1.0, summary
    return seeds / elapsed, summary


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
