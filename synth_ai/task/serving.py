"""Serving a task app with uvicorn: in the foreground, in a background thread, or on the
caller's own event loop.

Every server the project starts gets the same settings: uvicorn's own access log off (it would
print the whole URL, `?token=...` included; the app logs one safe line per request), and a cap
on open connections with a file-descriptor limit that holds it (`connections.py`). In the
foreground, logs are human lines or (`log_format="json"`) one JSON object per line, and a
task app prints its banner (`banner.py`) once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from .application import create_task_app
from .banner import LOG_FORMATS, base_url, print_banner, task_app_banner
from .connections import raise_open_file_limit, resolve_max_connections
from .references import get_task_app
from .shutdown import announce_shutdown

APP_ENV_VAR = "SYNTH_TASK_APP"
BANNER_ENV_VAR = "SYNTH_TASK_APP_BANNER"
"""`--reload`: `<log format> <url>`, so the reloaded process prints the banner each time."""
JSON_FORMATTER = "synth_ai.task.access_log.JsonFormatter"


class Server(uvicorn.Server):
    """uvicorn's server, announcing its shutdown to open streams before it waits for them, and
    calling `on_started(port)` once it listens (the bound port, even when asked for port 0)."""

    on_started: Callable[[int], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_started is not None:
            listeners = sockets or [s for server in self.servers for s in server.sockets]
            self.on_started(listeners[0].getsockname()[1])

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await announce_shutdown()
        await super().shutdown(sockets=sockets)


def uvicorn_settings(max_connections: int | None = None) -> dict[str, Any]:
    """uvicorn options every project server uses; raises the descriptor limit to fit the cap."""
    cap = resolve_max_connections(max_connections)
    raise_open_file_limit(cap)
    return {"access_log": False, "limit_concurrency": cap}


def foreground_log_config(log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging, plus this package's loggers (the access lines) on its console; with
    `json`, every record (the root logger's too) one JSON object per line."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    config = copy.deepcopy(LOGGING_CONFIG)
    level = logging.getLevelName(min(logging.INFO, logging.getLogger().getEffectiveLevel()))
    config["loggers"]["synth_ai"] = {"handlers": ["default"], "level": level, "propagate": False}
    if log_format == "json":
        for name in ("default", "access"):
            config["formatters"][name] = {"()": JSON_FORMATTER}
        config["root"] = {"handlers": ["default"], "level": level}
    return config


def run_app(
    app: ASGIApp | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    max_connections: int | None = None,
    log_format: str = "text",
    on_started: Callable[[str], None] | None = None,
    **options: Any,
) -> None:
    """Serve in the foreground with the project's settings (see the module doc);
    `on_started(url)` once it listens.

    With `reload=True` uvicorn's reloader runs the app (streams then wait for their clients at
    shutdown, as uvicorn's own server does), and `on_started` is not called.
    """
    settings = {
        "host": host,
        "port": port,
        "log_config": foreground_log_config(log_format),
        **uvicorn_settings(max_connections),
        **options,
    }
    if options.get("reload"):
        uvicorn.run(app, **settings)
        return
    server = Server(uvicorn.Config(app, **settings))
    if on_started is not None:
        server.on_started = lambda bound: on_started(base_url(host, bound))
    try:
        server.run()
    finally:
        if server.force_exit:
            exit_now()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, exit_now)  # while Python joins the worker threads


def exit_now(*_: object) -> None:
    """A second Ctrl-C: leave at once. Python joins every worker thread at exit, and a sync
    executor stuck in a blocking call (deaf to `context.cancelled`) would hold the process
    until it returns; its rollout was answered or abandoned already."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(128 + signal.SIGINT)


def app_from_environment() -> ASGIApp:
    """Factory for uvicorn's `--reload`: the app `SYNTH_TASK_APP` refers to, announced by its
    banner when `SYNTH_TASK_APP_BANNER` says how."""
    entry = get_task_app(os.environ.get(APP_ENV_VAR, "math"))
    app = create_task_app(entry.build())
    log_format, _, url = os.environ.get(BANNER_ENV_VAR, "").partition(" ")
    if url:
        print_banner(task_app_banner(app, url), log_format)
    return app


def run_task_app(
    name: str | Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    reload: bool = False,
    max_connections: int | None = None,
    log_format: str = "text",
    env_files: Sequence[str] = (),
) -> None:
    """Serve an app (a registered name, `app.py` or `module:attribute`; or, as 0.2.24 took
    it, a config factory, a config or an entry) in the foreground until interrupted; its
    banner on stderr once it listens.

    `max_connections` caps open connections (default `$SYNTH_MAX_CONNECTIONS`, else 2048).
    `log_format`: `text` (human lines) or `json` (one object per line). `env_files` are
    applied first (existing variables win), as 0.2.24 did.
    """
    if env_files:
        from dotenv import load_dotenv

        for env_file in env_files:
            if Path(env_file).is_file():
                load_dotenv(env_file, override=False)
    if isinstance(name, str):
        entry = get_task_app(name)
    else:
        from .references import entry_of

        entry = entry_of(name, "run_task_app")
        if reload:
            raise ValueError("reload needs a reference to import: app.py or module:attribute")
    if reload:
        os.environ[APP_ENV_VAR] = name  # the reference: a file or module loads in the child too
        os.environ[BANNER_ENV_VAR] = f"{log_format} {base_url(host, port)}"
        run_app(
            "synth_ai.task.serving:app_from_environment",
            host=host,
            port=port,
            max_connections=max_connections,
            log_format=log_format,
            factory=True,
            reload=True,
        )
    else:
        app = create_task_app(entry.build())
        run_app(
            app,
            host=host,
            port=port,
            max_connections=max_connections,
            log_format=log_format,
            on_started=lambda url: print_banner(task_app_banner(app, url), log_format),
        )


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


def embedded_config(
    app: ASGIApp, log_level: str | None, max_connections: int | None, options: dict[str, Any]
) -> uvicorn.Config:
    """uvicorn's config for a server started from code (a thread, or the caller's loop);
    `log_level` None (with `log_config=None` in `options`) leaves logging as the host set it."""
    settings = uvicorn_settings(max_connections)
    return uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **{**settings, **options},
    )


@contextmanager
def serve_in_background(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    max_connections: int | None = None,
    **options: Any,
) -> Iterator[str]:
    """Serve `app` from a thread and yield its base URL; stop it on exit. `options` go to
    uvicorn's config.

    The socket is bound and listening before the thread starts, so the URL works at once:
    connections made before uvicorn is ready wait in the backlog instead of failing.
    """
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = Server(embedded_config(app, log_level, max_connections, options))
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


class _Guest(uvicorn.Server):
    """uvicorn's server on a loop it does not own: the host keeps its signal handlers, and
    its own streams are not told of this server's shutdown."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = asyncio.Event()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit:  # uvicorn's way to fail a start; it would end the host's loop
            self.should_exit = True
        finally:
            self.startup_over.set()


@asynccontextmanager
async def serve_on_loop(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_connections: int | None = None,
    **options: Any,
) -> AsyncIterator[str]:
    """Serve `app` on the running event loop and yield its base URL once it has started;
    stop it on exit. `options` go to uvicorn's config. The host's logging is left alone
    (uvicorn's own config would replace its uvicorn loggers' handlers and levels), but for
    `uvicorn.access`, which uvicorn empties for a server without its access log (as all of
    this project's servers are: they log requests through `synth_ai.task.access`).

    For a server whose work is the caller's own (the optimizer's interceptor): requests are
    handled by the loop that sends the rollouts, with no second thread contending for the GIL.
    """
    sock = listening_socket(host, port)
    try:
        guest = {"log_config": None, **options}
        server = _Guest(embedded_config(app, None, max_connections, guest))
        # an empty context: requests must not run in the caller's variables (its trace span)
        serving = asyncio.create_task(server.serve(sockets=[sock]), context=contextvars.Context())
        started = asyncio.create_task(server.startup_over.wait())
        try:
            await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
            if not server.started:
                await serving  # raises what stopped it, if anything did
                raise RuntimeError("the server stopped before it started (its log says why)")
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            started.cancel()
            server.should_exit = True
            await serving
    finally:
        sock.close()
