"""A stream's view of one job's bus: a cursor into its shared window, and a cheap wait.

Per event and subscriber the work is the least it can be: the bus appends each event once to a
window every subscription reads from its own cursor, wakes the waiting ones with one future
each, and joins a batch's frames once for all those that want everything. A wait costs no
timer of its own: one per stream, re-armed about once per heartbeat.
"""

from __future__ import annotations

import asyncio
from collections import deque
from itertools import islice
from typing import Protocol

from .models import JobEvent
from .sse import event_frame

TIMER_SLACK_S = 0.001
"""asyncio may run a timer up to its clock's resolution early: a deadline this close has come."""


class SharedWindow(Protocol):
    """What a subscription reads of its bus (`JobBus`): the window of live events, where it
    starts and ends, the terminal event's index, and the sets it joins to be woken."""

    window: deque[JobEvent]
    window_start: int
    window_end: int
    terminal_index: int | None
    subscribers: set[Subscription]
    waiters: set[asyncio.Future[None]]

    def joined_from(self, start: int, max_bytes: int) -> tuple[bytes, int, int]: ...


class Subscription:
    """One stream's view of a job: a cursor into the bus's shared window of live events.

    Nothing is copied per subscriber: the bus keeps one bounded window (`subscriber_buffer`
    events) and every subscription reads it from its own cursor, taking everything new at once
    when its task runs (so under load one send carries many frames). A subscription that has
    not taken a wanted event by the time the window lets go of it is `lagged`: its stream says
    so and ends, and the client resumes from its last id.
    """

    def __init__(
        self, bus: SharedWindow, names: frozenset[str] | None, split: str | None, cursor: int
    ) -> None:
        self.bus = bus
        self.names = names
        self.split = split
        self.everything = names is None and not split
        self.cursor = cursor
        """The window index of the next event this subscription has not taken."""
        self.lagged = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def wants(self, event: JobEvent) -> bool:
        if self.everything:
            return True
        name = event.sse_name
        if self.names is not None and name not in self.names and event.type not in self.names:
            return False
        return not (self.split and name == "metric" and event.data.get("split") != self.split)

    def ready(self) -> bool:
        """Whether a wanted event is waiting (or the lag mark); skips unwanted ones."""
        if self.lagged:
            return True
        bus = self.bus
        if self.everything:
            return self.cursor < bus.window_end
        window, start = bus.window, bus.window_start
        while self.cursor < bus.window_end:
            if self.wants(window[self.cursor - start]):
                return True
            self.cursor += 1
        return False

    @property
    def past_terminal(self) -> bool:
        """Whether this subscription has taken (or skipped) the job's terminal status."""
        return self.bus.terminal_index is not None and self.cursor > self.bus.terminal_index

    def take(self, max_bytes: int, after_seq: int) -> bytes:
        """The frames of the wanted events past the cursor and past seq `after_seq` (those were
        replayed), joined, at most about `max_bytes` (at least one frame); moves the cursor."""
        bus = self.bus
        if self.lagged or self.cursor >= bus.window_end:
            return b""
        if self.everything:
            joined, end, lowest = bus.joined_from(self.cursor, max_bytes)
            if lowest > after_seq:
                self.cursor = end
                return joined
        frames: list[bytes] = []
        size = 0
        window, start = bus.window, bus.window_start
        while self.cursor < bus.window_end:
            event = window[self.cursor - start]
            if event.seq > after_seq and self.wants(event):
                frame = event_frame(event)
                if frames and size + len(frame) > max_bytes:
                    break
                frames.append(frame)
                size += len(frame)
            self.cursor += 1
        return b"".join(frames)

    def drain(self) -> list[JobEvent]:
        """Every wanted event past the cursor, for in-process readers. One that fell a window
        behind starts again from the newest event (what it missed is in the log), so that a
        reader which only looks at the job's state never spins on the lag mark."""
        bus = self.bus
        if self.lagged:
            self.lagged = False
            self.cursor = bus.window_end
            bus.subscribers.add(self)
            return []
        start = self.cursor - bus.window_start
        events = [e for e in islice(bus.window, start, None) if self.wants(e)]
        self.cursor = bus.window_end
        return events

    async def wait(self, timeout_s: float) -> bool:
        """Wait for a wanted event (or the lag mark); False on timeout."""
        return await self.wait_until(asyncio.get_running_loop().time() + timeout_s)

    async def wait_until(self, deadline: float) -> bool:
        """Wait for a wanted event (or the lag mark) until the loop's clock reads `deadline`;
        False once it does.

        One timer serves many waits: it is re-armed only when the deadline comes earlier than
        the armed one; a timer for a deadline since moved later wakes this once, to re-arm. So
        a stream pays for a timer about once per heartbeat, not once per event (asyncio.timeout
        costs a timer per wait). The wake-up itself is a future of this wait's own in the bus's
        set, resolved by its next broadcast: a cancelled stream cancels only its own future.
        """
        loop = asyncio.get_running_loop()
        while not self.ready():
            if loop.time() >= deadline - TIMER_SLACK_S:
                return False
            if self._timer is None or self._timer_at > deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_at(deadline, self._expire)
                self._timer_at = deadline
            waiter = self._waiter = loop.create_future()
            self.bus.waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                self.bus.waiters.discard(waiter)
        return True

    def _expire(self) -> None:
        self._timer = None
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
