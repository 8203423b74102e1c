"""Telling long responses (event streams) that their server has started to shut down.

uvicorn lets in-flight responses finish before it stops, and a stream never finishes by
itself: without this, SIGTERM waits for every stream's client to leave. The project's servers
announce the shutdown on their loop first and give the streams a moment to end their bodies
cleanly; each client then resumes elsewhere with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class _LoopStreams:
    open: set[asyncio.Event] = field(default_factory=set)
    shutting_down: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopStreams] = (
    weakref.WeakKeyDictionary()
)


def _streams() -> _LoopStreams:
    loop = asyncio.get_running_loop()
    if loop not in _loops:
        _loops[loop] = _LoopStreams()
    return _loops[loop]


@contextmanager
def shutdown_watch() -> Iterator[asyncio.Event]:
    """An event set when the server on this loop starts shutting down (already set if it has)."""
    streams = _streams()
    event = asyncio.Event()
    if streams.shutting_down:
        event.set()
    streams.open.add(event)
    try:
        yield event
    finally:
        streams.open.discard(event)
        if streams.shutting_down and not streams.open:
            streams.drained.set()


async def announce_shutdown(grace_s: float = 2.0) -> None:
    """Called by the server on its own loop as it begins to shut down: tells every stream, then
    waits (at most `grace_s`) for them to end."""
    streams = _streams()
    streams.shutting_down = True
    if not streams.open:
        return
    for event in streams.open:
        event.set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace_s):
            await streams.drained.wait()
