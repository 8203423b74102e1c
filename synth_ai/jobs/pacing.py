"""Live metrics of one job, paced: coalesced per name, at most `max_hz` per name, in seq order.

A metric that comes sooner than its name's interval after the last one sent is held back, and
a newer value of that name replaces it. While anything is held every later event waits behind
it, so what a stream sends has increasing ids: a client resuming from its last id neither
misses nor repeats an event, and the latest value of each name is always sent. What is held
goes out when the first held metric is due; at once before a terminal status, and at once when
more than `max_names` events or `max_held_bytes` of frames are held, so a flood never piles up.
The send times of at most `max_names` names per job are kept, least recently used out (a name
forgotten is sent at once next time), so many distinct names cost bounded memory.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from .models import JobEvent
from .sse import event_frame
from .subscription import TIMER_SLACK_S

MetricKey = tuple[str, str]


def metric_key(event: JobEvent) -> MetricKey:
    """Name and split: a train and an eval series of one name must not starve each other."""
    return str(event.data.get("name") or event.type), str(event.data.get("split") or "")


class MetricPacer:
    """Hands events to `send` in the order offered, holding metrics back as the module says.
    Loop thread only."""

    def __init__(
        self,
        send: Callable[[JobEvent], None],
        *,
        max_hz: float,
        max_names: int = 256,
        max_held_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self._send = send
        self._interval_s = 1.0 / max_hz if max_hz > 0 else 0.0
        self._max_names = max_names
        self._max_held_bytes = max_held_bytes
        self._sent_at: OrderedDict[MetricKey, float] = OrderedDict()
        """When each metric name was last sent (loop clock), least recently sent first."""
        self._held: OrderedDict[MetricKey | int, JobEvent] = OrderedDict()
        """Held events in seq order: metrics under their name (the latest value only, moved
        to the end when replaced), the rest under their seq."""
        self._held_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0

    @property
    def names(self) -> int:
        """Metric names whose last send time is kept."""
        return len(self._sent_at)

    def offer(self, event: JobEvent, *, final: bool = False) -> None:
        """Send `event`, the next in seq order, now or once what is held before it goes;
        `final`: nothing more is paced (the job ended), everything goes now."""
        if event.sse_name == "metric":
            key = metric_key(event)
            now = asyncio.get_running_loop().time()
            if not self._held and (final or self._due(key) <= now):
                self._mark_sent(key, now)
                self._send(event)
                return
            replaced = self._held.pop(key, None)
            if replaced is not None:
                self._held_bytes -= len(event_frame(replaced))
            self._held[key] = event
        elif self._held:
            self._held[event.seq] = event
        else:
            self._send(event)
            return
        self._held_bytes += len(event_frame(event))
        flood = len(self._held) > self._max_names or self._held_bytes > self._max_held_bytes
        self._release(force=final or flood)

    def _due(self, key: MetricKey) -> float:
        return self._sent_at.get(key, float("-inf")) + self._interval_s

    def _mark_sent(self, key: MetricKey, now: float) -> None:
        self._sent_at[key] = now
        self._sent_at.move_to_end(key)
        if len(self._sent_at) > self._max_names:
            self._sent_at.popitem(last=False)

    def _release(self, *, force: bool) -> None:
        """Send held events from the first on, up to a metric not yet due (unless `force`),
        and time the next release for when it is."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._held:
            key, event = next(iter(self._held.items()))
            if isinstance(key, tuple):
                due = self._due(key)
                if not force and due - now > TIMER_SLACK_S:  # timers may fire a little early
                    if self._timer is None or self._timer_due != due:
                        if self._timer is not None:
                            self._timer.cancel()
                        self._timer = loop.call_at(due, self._tick)
                        self._timer_due = due
                    return
                self._mark_sent(key, now)
            del self._held[key]
            self._held_bytes -= len(event_frame(event))
            self._send(event)
        self.close()

    def _tick(self) -> None:
        self._timer = None
        self._release(force=False)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
