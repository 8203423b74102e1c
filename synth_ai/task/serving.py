"""Serving a task app with uvicorn: in the foreground, or in a background thread."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from .registry import get_task_app
from .server import create_task_app

APP_ENV_VAR = "SYNTH_TASK_APP"


def app_from_environment() -> ASGIApp:
    """Factory for uvicorn's `--reload`: the app named by `SYNTH_TASK_APP`."""
    entry = get_task_app(os.environ.get(APP_ENV_VAR, "math"))
    return create_task_app(entry.config_factory())


def run_task_app(
    name: str, *, host: str = "127.0.0.1", port: int = 8001, reload: bool = False
) -> None:
    """Serve a registered app in the foreground until interrupted."""
    entry = get_task_app(name)
    if reload:
        os.environ[APP_ENV_VAR] = entry.app_id
        uvicorn.run(
            "synth_ai.task.serving:app_from_environment",
            factory=True,
            host=host,
            port=port,
            reload=True,
        )
    else:
        uvicorn.run(create_task_app(entry.config_factory()), host=host, port=port)


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening TCP socket for uvicorn's `sockets=`.

    Its protocol is stated as IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say
    so (`socket.socket()` and `socket.create_server` say 0), and without it every response
    waits ~40 ms on delayed ACKs.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


@contextmanager
def serve_in_background(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> Iterator[str]:
    """Serve `app` from a thread and yield its base URL; stop it on exit.

    The socket is bound and listening before the thread starts, so the URL works at once:
    connections made before uvicorn is ready wait in the backlog instead of failing.
    """
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{bound_port}", daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
