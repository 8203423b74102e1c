"""The in-process bus of one job: keeps a replay ring of committed events, fans out to subscribers.

Everything here runs on the event loop and never waits. The ring is bounded in events and in
bytes. Metrics are paced (`MetricPacer`: coalesced per name and split to at most
`max_metric_hz`, the latest value of each always delivered, ids always increasing); status, log
and artifact events are never coalesced. What is delivered live goes into one window shared by
every subscriber, bounded in events and bytes and kept only while someone subscribes, each
reading it from its own cursor; a subscriber that falls a whole window behind is marked lagged
and dropped: its stream says so and the client resumes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from itertools import islice

from .models import JobEvent, JobState
from .pacing import MetricPacer
from .sse import event_frame
from .subscription import Subscription

__all__ = ["ABOVE_ANY_SEQ", "JobBus", "RingBudget", "Subscription", "TooManySubscribers"]

ABOVE_ANY_SEQ = 2**63
MAX_LINGER_S = 0.1
"""The longest a delivery waits for the last round of sends to be paid for (`_wake_all`)."""


class TooManySubscribers(Exception):
    pass


class RingBudget:
    """The bytes of frames held by the rings of every bus of one process, against one cap
    (the service makes the idlest buses drop their rings when it is passed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit


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
        window_bytes: int = 8 * 1024 * 1024,
        max_metric_names: int = 256,
        budget: RingBudget | None = None,
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
        self._budget = budget or RingBudget(2**63)
        self.pacer = MetricPacer(
            self._broadcast,
            max_hz=max_metric_hz,
            max_names=max_metric_names,
            max_held_bytes=window_bytes,
        )
        self.max_subscribers = max_subscribers
        self._subscriber_buffer = subscriber_buffer
        self._window_bytes = window_bytes
        self.subscribers: set[Subscription] = set()
        self.window: deque[JobEvent] = deque()
        """The last events delivered live (metrics coalesced), at most `subscriber_buffer` and
        `window_bytes` of frames (but the newest), none while nobody subscribes, shared by
        every subscription; `window_start` is the index of its first, `window_end` one past
        its last (indexes count every event ever delivered live)."""
        self._window_used = 0
        self.window_start = self.window_end = 0
        self.terminal_index: int | None = None
        """The window index of the terminal status, once delivered."""
        self.waiters: set[asyncio.Future[None]] = set()
        """The futures of subscriptions waiting for the next delivery."""
        self._round_started = self._round_ended = self._round_busy = 0.0
        self._round_timer: asyncio.TimerHandle | None = None
        self._joined: tuple[int, int, bytes, int, int] | None = None
        """(from, window_end then, frames joined, end, lowest seq): one batch, made once for
        every subscription that wants everything and takes from the same index."""

    # --- producing -------------------------------------------------------------------------

    def publish(self, event: JobEvent) -> None:
        """Record and deliver one committed event. Loop thread only; never blocks."""
        if event.seq <= self.last_seq:
            return  # already heard of (the log said so when this bus was loaded)
        if event.seq != self.last_seq + 1:
            self.drop_ring()  # keep the ring contiguous; the log has what lies between
        self.last_seq = event.seq
        self.updated_at = time.time()
        self._ring.append(event)
        self._ring_resized(len(event_frame(event)))
        self._trim_ring()
        if (state := event.state) is not None:
            self.state = state
        self.pacer.offer(event, final=self.state.terminal)

    def _trim_ring(self) -> None:
        """Keep at most `ring_size` events and `ring_bytes` of frames (and the window)."""
        horizon = time.time() - self._ring_window_s if self._ring_window_s is not None else None
        while len(self._ring) > 1 and (
            len(self._ring) > self._ring_size
            or self._ring_used > self._ring_bytes
            or (horizon is not None and self._ring[0].ts < horizon)
        ):
            self._ring_resized(-len(event_frame(self._ring.popleft())))

    def _ring_resized(self, delta: int) -> None:
        self._ring_used += delta
        self._budget.used += delta

    def drop_ring(self) -> None:
        """Forget the replay ring (older cursors are then served from the log)."""
        self._ring.clear()
        self._ring_resized(-self._ring_used)

    @property
    def ring_bytes(self) -> int:
        return self._ring_used

    def _broadcast(self, event: JobEvent) -> None:
        """Deliver one event live: O(1) per event, plus one wake-up per waiting subscription
        (the first delivery of a loop turn wakes them all; later ones find none waiting)."""
        self.window.append(event)
        self._window_used += len(event_frame(event))
        if event.state is not None and event.state.terminal:
            self.terminal_index = self.window_end
        self.window_end += 1
        while self.window and (
            not self.subscribers
            or len(self.window) > self._subscriber_buffer
            or (self._window_used > self._window_bytes and len(self.window) > 1)
        ):
            self._let_go(self.window.popleft())
        if self.waiters and self._round_timer is None:
            delay = self._round_ended + self._round_busy - time.monotonic()
            if delay <= 0:
                self._wake_all()
            else:
                loop = asyncio.get_running_loop()
                self._round_timer = loop.call_later(min(delay, MAX_LINGER_S), self._wake_all)

    def _wake_all(self) -> None:
        """Wake every waiting subscription: one round of sends, each stream taking everything
        new in one send.

        The round's cost (each woken stream takes, sends and waits again within it) is
        measured by a callback queued behind theirs, and the next round starts no sooner than
        as long after this one ended: fan-out takes at most about half of the loop, the rest
        is left for the posts and commits that make events, and events that come meanwhile
        share the next round's sends. With few subscribers a round costs microseconds and
        nothing waits. (Waking in slices, to let posts in between, measured worse: more
        rounds, each with fewer events per send.)
        """
        self._round_timer = None
        waiters, self.waiters = self.waiters, set()
        self._round_started = time.monotonic()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        asyncio.get_running_loop().call_soon(self._end_round)

    def _end_round(self) -> None:
        self._round_ended = time.monotonic()
        self._round_busy = self._round_ended - self._round_started

    def _let_go(self, event: JobEvent) -> None:
        """The window's oldest event leaves it: a subscription that has not taken it yet skips
        it if unwanted, else has fallen too far behind (lagged; no longer counted)."""
        index = self.window_start
        self.window_start += 1
        self._window_used -= len(event_frame(event))
        for subscription in [s for s in self.subscribers if s.cursor <= index]:
            if subscription.wants(event):
                subscription.lagged = True
                self.subscribers.discard(subscription)
                subscription.wake()
            else:
                subscription.cursor = index + 1

    def joined_from(self, start: int, max_bytes: int) -> tuple[bytes, int, int]:
        """The frames of the window from index `start`, joined, at most about `max_bytes` (at
        least one frame): the bytes, the index past the last one, and the lowest seq among
        them. Made once per batch however many subscriptions send it."""
        cached = self._joined
        if cached is not None and cached[0] == start and cached[1] == self.window_end:
            return cached[2], cached[3], cached[4]
        frames: list[bytes] = []
        size = 0
        lowest = ABOVE_ANY_SEQ
        for event in islice(self.window, start - self.window_start, None):
            frame = event_frame(event)
            if frames and size + len(frame) > max_bytes:
                break
            frames.append(frame)
            size += len(frame)
            lowest = min(lowest, event.seq)
        end = start + len(frames)
        joined = frames[0] if len(frames) == 1 else b"".join(frames)
        self._joined = (start, self.window_end, joined, end, lowest)
        return joined, end, lowest

    # --- consuming -------------------------------------------------------------------------

    def subscribe(
        self, names: Iterable[str] | None = None, split: str | None = None
    ) -> Subscription:
        if len(self.subscribers) >= self.max_subscribers:
            raise TooManySubscribers(self.job_id)
        subscription = Subscription(
            self, frozenset(names) if names else None, split, self.window_end
        )
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)
        subscription.close()

    def ring_after(self, seq: int) -> list[JobEvent] | None:
        """Events after `seq` from the ring, or None when the ring does not reach back that far."""
        if seq >= self.last_seq:
            return []
        if not self._ring or self._ring[0].seq > seq + 1:
            return None
        return [event for event in self._ring if event.seq > seq]

    def close(self) -> None:
        if self._round_timer is not None:
            self._round_timer.cancel()
        self.pacer.close()
        self.drop_ring()
