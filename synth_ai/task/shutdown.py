"""Telling long responses (event streams, rollouts) that their server has started to shut down.

uvicorn lets in-flight responses finish before it stops, and a stream never finishes by
itself: without this, SIGTERM waits for every stream's client to leave. The project's servers
announce the shutdown on their loop first and give the streams a moment to end their bodies
cleanly; each client then resumes elsewhere with `Last-Event-ID`. Rollouts in flight are told
through the callbacks registered with `on_shutdown` (their `context.cancelled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class _LoopStreams:
    open: set[asyncio.Event] = field(default_factory=set)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
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


def on_shutdown(callback: Callable[[], None]) -> None:
    """Call `callback` on this loop when its server starts shutting down (at once if it has).
    For owners that live as long as the app (one registration per loop, never withdrawn)."""
    streams = _streams()
    if streams.shutting_down:
        callback()
    else:
        streams.callbacks.append(callback)


async def announce_shutdown(grace_s: float = 2.0) -> None:
    """Called by the server on its own loop as it begins to shut down: runs the `on_shutdown`
    callbacks, tells every stream, then waits (at most `grace_s`) for the streams to end."""
    streams = _streams()
    streams.shutting_down = True
    callbacks, streams.callbacks = streams.callbacks, []
    for callback in callbacks:
        callback()
    if not streams.open:
        return
    for event in streams.open:
        event.set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace_s):
            await streams.drained.wait()
