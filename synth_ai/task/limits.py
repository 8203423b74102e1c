"""Bounds on what one task app takes in: rollouts in flight, rollouts waiting, body size."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import TaskAppError, error_response


def overloaded(retry_after_s: int = 1) -> TaskAppError:
    return TaskAppError(
        429,
        "overloaded",
        "Too many rollouts are running or waiting; retry later.",
        headers={"Retry-After": str(retry_after_s)},
    )


class RolloutLimiter:
    """At most `max_concurrent` rollouts run; at most `max_queued` wait; the rest get 429.

    Waiters are plain futures of the running loop, handed a slot in arrival order, so the
    limiter is bound to no particular event loop and its memory is bounded by its capacity.
    """

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        if max_concurrent < 1 or max_queued < 0:
            raise ValueError("max_concurrent must be >= 1 and max_queued >= 0")
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def slot(self) -> _Slot:
        """`async with limiter.slot():` holds one running place for the block."""
        return _Slot(self)

    async def _acquire(self) -> None:
        if self.running < self.max_concurrent and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self.max_queued:
            raise overloaded()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # a slot was handed over just as we were cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter; `running` is unchanged
                return
        self.running -= 1


class _Slot:
    """A plain context manager (cheaper than a generator-based one on the hot path)."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: RolloutLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        await self._limiter._acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter._release()


class RequestTooLarge(TaskAppError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "request_too_large", f"The request body is larger than {limit} bytes.", limit=limit
        )


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes`: at once by Content-Length, else while they stream in.

    `limit_for(scope)` may name another limit for some requests (uploads), else None.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        limit_for: Callable[[Scope], int | None] | None = None,
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope) if self.limit_for is not None else None
        max_bytes = self.default_max_bytes if limit is None else limit
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    response = error_response(400, "bad_request", "Content-Length is not a number.")
                    await response(scope, receive, send)
                    return
                if int(value) > max_bytes:
                    await RequestTooLarge(max_bytes).to_response()(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise RequestTooLarge(max_bytes)
            return message

        await self.app(scope, counting_receive, send)
