"""Serving a task app with uvicorn: in the foreground, or in a background thread.

Every server the project starts gets the same settings: uvicorn's own access log off (it would
print the whole URL, `?token=...` included; the app logs one safe line per request), and a cap
on open connections with a file-descriptor limit that holds it (`connections.py`).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from .connections import raise_open_file_limit, resolve_max_connections
from .registry import get_task_app
from .server import create_task_app
from .shutdown import announce_shutdown

APP_ENV_VAR = "SYNTH_TASK_APP"


class Server(uvicorn.Server):
    """uvicorn's server, announcing its shutdown to open streams before it waits for them."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await announce_shutdown()
        await super().shutdown(sockets=sockets)


def uvicorn_settings(max_connections: int | None = None) -> dict[str, Any]:
    """uvicorn options every project server uses; raises the descriptor limit to fit the cap."""
    cap = resolve_max_connections(max_connections)
    raise_open_file_limit(cap)
    return {"access_log": False, "limit_concurrency": cap}


def foreground_log_config() -> dict[str, Any]:
    """uvicorn's logging, plus this package's loggers (the access lines) on its console."""
    config = copy.deepcopy(LOGGING_CONFIG)
    level = min(logging.INFO, logging.getLogger().getEffectiveLevel())  # -v keeps DEBUG
    config["loggers"]["synth_ai"] = {
        "handlers": ["default"],
        "level": logging.getLevelName(level),
        "propagate": False,
    }
    return config


def run_app(
    app: ASGIApp | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    max_connections: int | None = None,
    **options: Any,
) -> None:
    """Serve in the foreground with the project's settings (see the module doc).

    With `reload=True` uvicorn's reloader runs the app (streams then wait for their clients at
    shutdown, as uvicorn's own server does).
    """
    settings = {
        "host": host,
        "port": port,
        "log_config": foreground_log_config(),
        **uvicorn_settings(max_connections),
        **options,
    }
    if options.get("reload"):
        uvicorn.run(app, **settings)
    else:
        Server(uvicorn.Config(app, **settings)).run()


def app_from_environment() -> ASGIApp:
    """Factory for uvicorn's `--reload`: the app `SYNTH_TASK_APP` refers to."""
    entry = get_task_app(os.environ.get(APP_ENV_VAR, "math"))
    return create_task_app(entry.build())


def run_task_app(
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    reload: bool = False,
    max_connections: int | None = None,
) -> None:
    """Serve an app (a registered name, `app.py` or `module:attribute`) in the foreground
    until interrupted.

    `max_connections` caps open connections (default `$SYNTH_MAX_CONNECTIONS`, else 2048).
    """
    entry = get_task_app(name)
    if reload:
        os.environ[APP_ENV_VAR] = name  # the reference: a file or module loads in the child too
        run_app(
            "synth_ai.task.serving:app_from_environment",
            host=host,
            port=port,
            max_connections=max_connections,
            factory=True,
            reload=True,
        )
    else:
        app = create_task_app(entry.build())
        run_app(app, host=host, port=port, max_connections=max_connections)


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
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    max_connections: int | None = None,
) -> Iterator[str]:
    """Serve `app` from a thread and yield its base URL; stop it on exit.

    The socket is bound and listening before the thread starts, so the URL works at once:
    connections made before uvicorn is ready wait in the backlog instead of failing.
    """
    settings = uvicorn_settings(max_connections)
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = Server(
        uvicorn.Config(
            app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5, **settings
        )
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
