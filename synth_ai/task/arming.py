"""Arming a rollout's deadline and disconnect listener only once it has lasted a moment.

Armed at the start, a rollout's `asyncio.timeout` and `ClientWatch` listener cost a timer and a
task for every rollout: about a fifth of the server's CPU for a trivial executor
(bench/RESULTS.md, "late arming"). Most rollouts of a fast environment end in microseconds,
so an app keeps one timer instead, and what is still running when it fires is armed then, in
the same way it would have been at the start:

- a deadline keeps its time (it is set from when the executor started, and a deadline shorter
  than the delay is armed at once, so none is due before the timer fires);
- a client that leaves is noticed at most `after_s` later than by a listener armed at once.

`Arming(0)` arms everything at once: the plain path, which tests hold this one to.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Protocol

ARM_AFTER_S = 0.05
"""How long a rollout runs before its deadline and disconnect listener are armed."""


class Armable(Protocol):
    def arm(self) -> None:
        """Start watching (called once, on the loop)."""


class Arming:
    """One app's pending arms, and the one timer that arms them."""

    __slots__ = ("_loop", "_timer", "_waiting", "after_s")

    def __init__(self, after_s: float = ARM_AFTER_S) -> None:
        self.after_s = after_s
        self._waiting: dict[Armable, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm_soon(self, armable: Armable, due_in_s: float | None = None) -> None:
        """Arm `armable` when the timer fires, or now when it is due before then."""
        if (due_in_s is not None and due_in_s <= self.after_s) or self.after_s <= 0:
            armable.arm()
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop and not self._adopt(loop):
            armable.arm()  # another loop still runs this app's rollouts: the plain path
            return
        self._waiting[armable] = None
        if self._timer is None:
            # an empty context: what the timer arms must not run in this rollout's variables
            self._timer = loop.call_later(
                self.after_s, self._fire, loop, context=contextvars.Context()
            )

    def forget(self, armable: Armable) -> None:
        """`armable` has finished: it no longer needs arming."""
        self._waiting.pop(armable, None)

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Serve `loop` from now on, unless the loop served so far may still run what waits
        there (it runs in another thread, or only paused): then `loop` gets the plain path."""
        old = self._loop
        if old is not None and not old.is_closed() and (old.is_running() or self._waiting):
            return False
        if self._timer is not None:
            self._timer.cancel()
        self._loop, self._waiting, self._timer = loop, {}, None
        return True

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # a timer of a loop given up, run again after all
        self._timer = None
        waiting, self._waiting = self._waiting, {}
        for armable in waiting:
            armable.arm()
