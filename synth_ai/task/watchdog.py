"""Deadlines and disconnect watching for every rollout in flight, on one timer per app.

Two timers per rollout (one to start listening for the client leaving once the rollout has run
a while, one for its deadline) cost more than a trivial rollout itself. Instead one sweep runs
every `period` while any rollout is in flight: a rollout still running at its second sweep gets
a task listening for its client's disconnect, and one whose deadline falls before the sweep
after next gets an exact timer for it. A quick rollout costs a dict insert and delete.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

TIMEOUT = "timeout"
DISCONNECTED = "disconnected"


class Watch:
    """One rollout under watch: cancels its task at the deadline or when its client leaves,
    and records which of the two it was."""

    __slots__ = (
        "_cancelling",
        "_listener",
        "_receive",
        "_seen",
        "_task",
        "_timer",
        "deadline_at",
        "loop",
        "reason",
    )

    def __init__(
        self, task: asyncio.Task[object], loop: asyncio.AbstractEventLoop, receive: Receive
    ) -> None:
        self._task = task
        self.loop = loop
        self._receive = receive
        self._cancelling = task.cancelling()
        self._seen = False
        self._listener: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.deadline_at: float | None = None
        self.reason: str | None = None

    def _cancel(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self._task.cancel()

    def _expire(self) -> None:
        self._cancel(TIMEOUT)

    async def _listen(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._cancel(DISCONNECTED)

    def _arm_timer(self, deadline_at: float) -> None:
        self._timer = self.loop.call_at(deadline_at, self._expire)

    def start_deadline(self, seconds: float, period: float) -> None:
        """The deadline starts now; one shorter than two sweeps gets its exact timer at once."""
        self.deadline_at = self.loop.time() + seconds
        if seconds <= 2 * period:
            self._arm_timer(self.deadline_at)

    def stop_deadline(self) -> bool:
        """Stop the deadline; True when it had cancelled the task and no other cancellation
        is pending (it is then withdrawn, so the caller can answer 504 instead), as
        `asyncio.timeout` does."""
        self.deadline_at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return self.reason is not None and self._withdraw(TIMEOUT)

    def client_left(self) -> bool:
        """True when this watch cancelled the task because the client left (and withdraws it)."""
        return self._withdraw(DISCONNECTED)

    def _withdraw(self, reason: str) -> bool:
        if self.reason != reason:
            return False
        self.reason = None
        return self._task.uncancel() <= self._cancelling

    def swept(self, horizon: float) -> None:
        """A sweep saw this rollout still running: listen from the second sweep on, and arm the
        deadline's timer once it falls before `horizon`."""
        if not self._seen:
            self._seen = True
        elif self._listener is None:
            self._listener = self.loop.create_task(self._listen())
        if self.deadline_at is not None and self._timer is None and self.deadline_at <= horizon:
            self._arm_timer(self.deadline_at)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._listener is not None:
            self._listener.cancel()


class Watchdog:
    """The rollouts of one app in flight, and the one periodic sweep that watches them."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._watches: dict[Watch, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeping = False

    def watch(self, receive: Receive) -> Watch:
        """Watch the current task until `forget`."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        watch = Watch(task, loop, receive)
        self._watches[watch] = None
        if not self._sweeping or loop is not self._loop:
            self._loop, self._sweeping = loop, True
            loop.call_later(self.period, self._sweep, loop)
        return watch

    def forget(self, watch: Watch) -> None:
        del self._watches[watch]
        watch.close()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # the app moved to another loop, which has its own sweep
        for stale in [w for w in self._watches if w.loop is not loop and w.loop.is_closed()]:
            del self._watches[stale]  # left behind by a loop that closed mid-rollout
        horizon = loop.time() + 2 * self.period
        for watch in self._watches:
            if watch.loop is loop:
                watch.swept(horizon)
        if self._watches:
            loop.call_later(self.period, self._sweep, loop)
        else:
            self._sweeping = False
