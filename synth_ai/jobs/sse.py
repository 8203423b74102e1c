"""Server-Sent Events on the wire: framing, and a response that never outlives its client.

Frames are `id: <seq>`, `event: <name>`, `data: <one-line JSON>` where the JSON is the event's
payload at the top level (`JobEvent.wire_payload`). The response stops when the client
disconnects, when its server starts shutting down (the client resumes elsewhere), and when a
send stays blocked past a timeout (a client that stopped reading), so a stalled reader holds no
more than the transport's own bounded buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Receive, Scope, Send

from synth_ai.task.shutdown import shutdown_watch

from .models import JobEvent

logger = logging.getLogger("synth_ai.jobs.sse")

KEEP_ALIVE = b": keep-alive\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_frame(event: JobEvent) -> bytes:
    """The event's frame, encoded once and kept on the event for every other stream."""
    if event._frame is None:
        data = _json(event.wire_payload())
        event._frame = f"id: {event.seq}\nevent: {event.sse_name}\ndata: {data}\n\n".encode()
    return event._frame


def control_frame(name: str, payload: dict[str, Any]) -> bytes:
    """A frame without an id (`end`, `lagged`, `reset`), so it moves no client's cursor."""
    return f"event: {name}\ndata: {_json(payload)}\n\n".encode()


def retry_frame(retry_ms: int) -> bytes:
    return f"retry: {retry_ms}\n\n".encode()


class EventStreamResponse:
    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        send_timeout_s: float,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.chunks = chunks
        self.send_timeout_s = send_timeout_s
        self.headers = HEADERS + (extra_headers or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        with shutdown_watch() as shutting_down:
            pump = asyncio.ensure_future(self._pump(send))
            watch = asyncio.ensure_future(self._watch(receive))
            stop = asyncio.ensure_future(shutting_down.wait())
            try:
                await asyncio.wait({pump, watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, watch, stop):
                    task.cancel()
                await asyncio.gather(pump, watch, stop, return_exceptions=True)
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            if shutting_down.is_set() and watch.cancelled():  # client still there: end cleanly
                with contextlib.suppress(OSError, RuntimeError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]

    async def _pump(self, send: Send) -> None:
        async for chunk in self.chunks:
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:
                logger.info("closing a stream whose client stopped reading")
                return
            await asyncio.sleep(0)  # a turn for the disconnect watcher between chunks
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
