"""Bounds on what one task app takes in: rollouts in flight, rollouts waiting, body size."""

from __future__ import annotations

import asyncio
from collections import deque

from .errors import TaskAppError


def overloaded(retry_after_s: int = 1) -> TaskAppError:
    return TaskAppError(
        429,
        "overloaded",
        "Too many rollouts are running or waiting; retry later.",
        headers={"Retry-After": str(retry_after_s)},
    )


class RolloutLimiter:
    """At most `max_concurrent` rollouts run; at most `max_queued` wait; the rest get 429.

    A semaphore with a bounded line, as `asyncio.Semaphore` is built: waiters are plain futures
    of the running loop (so the limiter is bound to no particular loop), a release hands the
    slot to the first waiter still waiting, and each waiter, however it ends, takes itself out
    of the line. A waiter handed a slot just as it was cancelled passes the slot on.
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

    def try_acquire(self) -> bool:
        """Take a running place if one is free and nobody waits (no await on the hot path)."""
        if self.running < self.max_concurrent and not self._waiters:
            self.running += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a running place, waiting in line for one; 429 when the line is full.
        Every successful acquire is paired with one `release()`."""
        if self.try_acquire():
            return
        if len(self._waiters) >= self.max_queued:
            raise overloaded()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed over just as we were cancelled
            raise
        finally:
            self._waiters.remove(waiter)  # only its own waiter takes a future out of the line

    def release(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter; `running` is unchanged
                return
        self.running -= 1


class RequestTooLarge(TaskAppError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "request_too_large", f"The request body is larger than {limit} bytes.", limit=limit
        )
