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
TRANSPORT_SEND = "synth_ai.jobs.transport_send"
"""Scope key of the server's own `send`, set by an app (`JobsApp`) whose layers wrap `send`
only to watch the response start: a stream's body messages then skip those wrappers."""
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
        self._sending_since: float | None = None
        self._stall_timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        # the start went through every layer (the access log sees the status); the bodies,
        # one per batch for as long as the stream lasts, need none of them
        body_send: Send = scope.get(TRANSPORT_SEND) or send
        with shutdown_watch() as shutting_down:
            pump = asyncio.ensure_future(self._pump(body_send))
            watch = asyncio.ensure_future(self._watch(receive))
            stop = asyncio.ensure_future(shutting_down.wait())
            self._arm(pump, self.send_timeout_s)
            try:
                await asyncio.wait({pump, watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if self._stall_timer is not None:
                    self._stall_timer.cancel()
                for task in (pump, watch, stop):
                    task.cancel()
                await asyncio.gather(pump, watch, stop, return_exceptions=True)
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            if shutting_down.is_set() and watch.cancelled():  # client still there: end cleanly
                with contextlib.suppress(OSError, RuntimeError):
                    await body_send({"type": "http.response.body", "body": b"", "more_body": False})
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]

    async def _pump(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        async for chunk in self.chunks:
            self._sending_since = loop.time()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self._sending_since = None
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _arm(self, pump: asyncio.Future[None], delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._stall_timer = loop.call_later(delay, self._check_stall, pump)

    def _check_stall(self, pump: asyncio.Future[None]) -> None:
        """End the stream when one send has been blocked `send_timeout_s` (a client that
        stopped reading). One timer per stream, re-armed from here, rather than a timeout
        around every send: sends are the hot path of a fan-out."""
        since, now = self._sending_since, asyncio.get_running_loop().time()
        if since is not None and now - since >= self.send_timeout_s - 0.001:
            logger.info("closing a stream whose client stopped reading")
            pump.cancel()
            return
        self._arm(pump, self.send_timeout_s if since is None else since + self.send_timeout_s - now)

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
