"""The in-process bus of one job: keeps a replay ring of committed events, fans out to subscribers.

Everything here runs on the event loop and never waits. The ring is bounded in events and in
bytes. Metrics are coalesced per name and split to at most `max_metric_hz` (the latest value of
each is always delivered, before any terminal status); status, log and artifact events are never
coalesced. A subscriber whose bounded buffer fills is marked lagged and dropped: its stream says
so and the client resumes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable

from .models import JobEvent, JobState
from .sse import event_frame


class TooManySubscribers(Exception):
    pass


class Subscription:
    """One stream's view of a job: a bounded buffer of the events it asked for."""

    def __init__(self, names: frozenset[str] | None, split: str | None, capacity: int) -> None:
        self.names = names
        self.split = split
        self.capacity = capacity
        self.lagged = False
        self._buffer: deque[JobEvent] = deque()
        self._ready = asyncio.Event()

    def wants(self, event: JobEvent) -> bool:
        name = event.sse_name
        if self.names is not None and name not in self.names and event.type not in self.names:
            return False
        return not (self.split and name == "metric" and event.data.get("split") != self.split)

    def offer(self, event: JobEvent) -> bool:
        """Buffer an event; False (and lagged) when the buffer is full."""
        if not self.wants(event):
            return True
        if len(self._buffer) >= self.capacity:
            self.lagged = True
            self._ready.set()
            return False
        self._buffer.append(event)
        self._ready.set()
        return True

    def drain(self) -> list[JobEvent]:
        events = list(self._buffer)
        self._buffer.clear()
        self._ready.clear()
        return events

    async def wait(self, timeout_s: float) -> bool:
        """Wait for events (or the lag mark); False on timeout.

        `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can swallow the
        cancellation that ends the stream of a client that left, leaving the stream running.
        """
        if self._buffer or self.lagged:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True


class JobBus:
    """The live side of one job. It hears of events only once they are committed, so what it
    replays and sends is always in the log too."""

    def __init__(
        self,
        job_id: str,
        *,
        last_seq: int,
        state: JobState,
        ring_size: int = 1000,
        ring_bytes: int = 4 * 1024 * 1024,
        ring_window_s: float | None = None,
        max_metric_hz: float = 4.0,
        max_subscribers: int = 256,
        subscriber_buffer: int = 1024,
    ) -> None:
        self.job_id = job_id
        self.tenant: str | None = None
        """Who owns the job: a tenant's name, or None for the operator."""
        self.last_seq = last_seq
        self.state = state
        self.updated_at = time.time()
        self._ring: deque[JobEvent] = deque()
        self._ring_size = ring_size
        self._ring_bytes = ring_bytes
        self._ring_used = 0
        self._ring_window_s = ring_window_s
        self._metric_interval_s = 1.0 / max_metric_hz if max_metric_hz > 0 else 0.0
        self._metric_sent: dict[tuple[str, str], float] = {}
        self._metric_pending: dict[tuple[str, str], JobEvent] = {}
        self._metric_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.max_subscribers = max_subscribers
        self._subscriber_buffer = subscriber_buffer
        self.subscribers: set[Subscription] = set()

    # --- producing -------------------------------------------------------------------------

    def sync(self, last_seq: int, state: JobState) -> None:
        """Take what the log says, unless this bus has already heard of newer events.

        The ring must hold a contiguous run of seqs ending at `last_seq`: when the log is ahead,
        the ring starts afresh (older cursors are then served from the log).
        """
        if last_seq > self.last_seq:
            self.last_seq = last_seq
            self.state = state
            self._ring.clear()
            self._ring_used = 0

    def publish(self, event: JobEvent) -> None:
        """Record and deliver one committed event. Loop thread only; never blocks."""
        if event.seq <= self.last_seq:
            return  # already heard of (the log said so when this bus was loaded)
        if event.seq != self.last_seq + 1:
            self._ring.clear()  # keep the ring contiguous; the log has what lies between
            self._ring_used = 0
        self.last_seq = event.seq
        self.updated_at = time.time()
        self._ring.append(event)
        self._ring_used += len(event_frame(event))
        self._trim_ring()
        if (state := event.state) is not None:
            self.state = state
        if event.sse_name == "metric":
            self._deliver_metric(event)
        else:
            if self.state.terminal:
                self._flush_metrics()
            self._broadcast(event)

    def _trim_ring(self) -> None:
        """Keep at most `ring_size` events and `ring_bytes` of frames (and the window)."""
        horizon = time.time() - self._ring_window_s if self._ring_window_s is not None else None
        while len(self._ring) > 1 and (
            len(self._ring) > self._ring_size
            or self._ring_used > self._ring_bytes
            or (horizon is not None and self._ring[0].ts < horizon)
        ):
            self._ring_used -= len(event_frame(self._ring.popleft()))

    @property
    def ring_bytes(self) -> int:
        return self._ring_used

    def _deliver_metric(self, event: JobEvent) -> None:
        # per name and split: a train and an eval series of one name must not starve each other
        key = (str(event.data.get("name") or event.type), str(event.data.get("split") or ""))
        now = time.monotonic()
        due = self._metric_sent.get(key, float("-inf")) + self._metric_interval_s
        if now >= due and key not in self._metric_pending:
            self._metric_sent[key] = now
            self._broadcast(event)
            return
        self._metric_pending[key] = event  # a newer value replaces the held one
        if key not in self._metric_timers:
            loop = asyncio.get_running_loop()
            self._metric_timers[key] = loop.call_later(
                max(due - now, 0.0), self._send_pending_metric, key
            )

    def _send_pending_metric(self, key: tuple[str, str]) -> None:
        self._metric_timers.pop(key, None)
        event = self._metric_pending.pop(key, None)
        if event is not None:
            self._metric_sent[key] = time.monotonic()
            self._broadcast(event)

    def _flush_metrics(self) -> None:
        for key in list(self._metric_pending):
            timer = self._metric_timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            self._send_pending_metric(key)

    def _broadcast(self, event: JobEvent) -> None:
        for subscription in list(self.subscribers):
            if not subscription.offer(event):
                self.subscribers.discard(subscription)

    # --- consuming -------------------------------------------------------------------------

    def subscribe(
        self, names: Iterable[str] | None = None, split: str | None = None
    ) -> Subscription:
        if len(self.subscribers) >= self.max_subscribers:
            raise TooManySubscribers(self.job_id)
        subscription = Subscription(
            frozenset(names) if names else None, split, self._subscriber_buffer
        )
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)

    def ring_after(self, seq: int) -> list[JobEvent] | None:
        """Events after `seq` from the ring, or None when the ring does not reach back that far."""
        if seq >= self.last_seq:
            return []
        if not self._ring or self._ring[0].seq > seq + 1:
            return None
        return [event for event in self._ring if event.seq > seq]

    def close(self) -> None:
        for timer in self._metric_timers.values():
            timer.cancel()
        self._metric_timers.clear()
