"""Serve an ASGI app on a socket that already listens: the one uvicorn setup of every bench server.

Imported by `harness.server_process` (forked servers). As a script it serves an app from another
interpreter or another checkout, on a listening socket inherited as a file descriptor:

    python serve_app.py FD module:factory [ARG ...]

serves `factory(*ARGS)` on FD, after printing one line to stdout: the file its top-level package
was imported from (so a caller can check which copy of the code it is running). Imports nothing
from the project itself, so it runs against any checkout on PYTHONPATH.

`BENCH_UVICORN_LOOP` and `BENCH_UVICORN_HTTP` choose uvicorn's event loop and HTTP parser (default
`auto`, uvicorn's own: uvloop and httptools when installed), so servers can be compared on the
pure-Python ones (`asyncio`, `h11`) and on the fast ones alike.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from typing import Any


def serve(app: Any, sock: socket.socket) -> None:
    import logging

    import uvicorn

    logging.disable(logging.INFO)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop=os.environ.get("BENCH_UVICORN_LOOP", "auto"),
        http=os.environ.get("BENCH_UVICORN_HTTP", "auto"),
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str]) -> None:
    fd, spec, *args = argv
    module_name, _, factory = spec.partition(":")
    module = importlib.import_module(module_name)
    package = sys.modules[module_name.partition(".")[0]]
    print(package.__file__, flush=True)
    serve(getattr(module, factory)(*args), socket.socket(fileno=int(fd)))


if __name__ == "__main__":
    main(sys.argv[1:])
