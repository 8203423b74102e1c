"""Running the CLI's servers as real processes, for tests that kill or restart them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping

from .conftest import KEY

_drains: dict[int, threading.Thread] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    args: list[str],
    env: Mapping[str, str] | None = None,
    ready: str = "Uvicorn running on",
    cwd: str | os.PathLike[str] | None = None,
    port: int | None = None,
) -> tuple[subprocess.Popen[str], str, list[str]]:
    """Run `python -m synth_ai ARGS --port P` until it prints `ready` (by default: uvicorn
    says it listens; with `--reload`, wait for "Application startup complete" instead).

    The child gets this environment plus `ENVIRONMENT_API_KEY` (the tests' key) unless `env`
    is given. `port`: a fixed one (to restart a server where its clients look), else a free one.
    """
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "synth_ai", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(env) if env is not None else {**os.environ, "ENVIRONMENT_API_KEY": KEY},
        cwd=cwd,
    )
    assert process.stdout is not None
    output: list[str] = []
    for line in process.stdout:
        output.append(line)
        if ready in line:
            # keep reading, or a full pipe would block the server's logging (and the server)
            drain = threading.Thread(target=_drain, args=(process, output), daemon=True)
            drain.start()
            _drains[process.pid] = drain
            return process, f"http://127.0.0.1:{port}", output
    process.wait(timeout=10)
    raise AssertionError("the server exited early:\n" + "".join(output))


def _drain(process: subprocess.Popen[str], output: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


def stop_server(process: subprocess.Popen[str], output: list[str]) -> str:
    """Terminate and answer everything the server printed."""
    process.terminate()
    process.wait(timeout=10)
    drain = _drains.pop(process.pid, None)
    if drain is not None:
        drain.join(timeout=10)  # the pipe is closed: it has read the last line
    return "".join(output)
