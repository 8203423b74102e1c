"""`Outbox`: what a `RemoteEmitter` has yet to send, and what gives way when too much waits.

Producers `put` encoded events; the emitter's one sender thread takes them out oldest first,
one batch at a time (`next_batch`), so the server stores events in the order they were emitted.

Backpressure: the producer never waits on the network, and what says where the job is goes
through whatever the network does.

- `emit*` never blocks and never raises for backpressure (an invalid event, or one larger than
  `max_event_bytes`, raises at once: that is the caller's bug, not the network's).
- Below `max_queue` waiting events, everything is queued.
- From `max_queue` on, a metric replaces the waiting metric with the same `(type, name, split)`
  (the newest value is kept and moves to the back of the queue, so values still go out in the
  order they were measured), counted in `stats.coalesced`; a metric with no such twin is
  dropped, counted in `stats.dropped_metrics`.
- Status and artifact events are never dropped or coalesced: they are the job's state and its
  outputs, emitted at the pace of phases and checkpoints, and the terminal status is what ends
  every stream. Logs are never dropped either until `max_buffered` events wait (10x `max_queue`
  by default: the server has then been unreachable for a long while); past it new log lines are
  dropped and counted in `stats.dropped_logs`.
- When anything was dropped, the next status says so: `dropped_events: true` and
  `emitter_dropped: {"metric": n, "log": m}` (running totals) are added to its data
  (`drops_to_report`).
- Once the server refused the events (`refuse`), what waits is discarded and later events are
  counted no-ops (`stats.discarded`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class QueuedEvent:
    """One event, encoded, waiting in the outbox."""

    body: bytes
    key: tuple[str, str, str] | None
    """`(type, name, split)` of a metric; None for events that are never coalesced."""
    terminal: bool


class Outbox:
    """The events waiting to be posted, oldest first, and the one batch in flight.

    Any thread may `put`; one sender takes `next_batch` and then reports how it went
    (`stored`, `refuse` or `abandon`). `changed` is notified on every change; its `lock`
    guards every attribute, so a reader that holds it sees one consistent state.
    """

    def __init__(
        self, *, max_queue: int, max_buffered: int, max_batch: int, max_batch_bytes: int
    ) -> None:
        self.max_queue = max_queue
        self.max_buffered = max_buffered
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._queue: OrderedDict[int, QueuedEvent] = OrderedDict()
        self._latest: dict[tuple[str, str, str], int] = {}
        """The ticket of the newest waiting metric of each key."""
        self._ticket = 0
        self.in_flight = 0
        self.closed = False
        self.refused = False
        self.sent = 0
        """Events of batches the server stored."""
        self.coalesced = self.dropped_metrics = self.dropped_logs = self.discarded = 0
        self._reported_drops = 0

    def __len__(self) -> int:
        """Events waiting (not counting a batch in flight)."""
        return len(self._queue)

    # --- producing (any thread; never waits) ---------------------------------------------------

    def put(self, item: QueuedEvent, name: str) -> None:
        """Queue `item` (whose SSE name is `name`), or let it give way (see the module doc)."""
        with self.lock:
            if self.closed:
                raise RuntimeError("this RemoteEmitter is closed")
            if self.refused:
                self.discarded += 1
                return
            waiting = len(self._queue)
            if item.key is not None and waiting >= self.max_queue:
                twin = self._latest.get(item.key)
                if twin is None:
                    self.dropped_metrics += 1
                    return
                del self._queue[twin]
                self.coalesced += 1
            elif name == "log" and waiting >= self.max_buffered:
                self.dropped_logs += 1
                return
            self._ticket += 1
            self._queue[self._ticket] = item
            if item.key is not None:
                self._latest[item.key] = self._ticket
            self.changed.notify_all()

    def drops_to_report(self) -> dict[str, int] | None:
        """The running drop totals if events were dropped since the last report, else None:
        what the next status says (`emitter_dropped`), so a reader learns of the gap."""
        with self.lock:
            drops = self.dropped_metrics + self.dropped_logs
            if drops <= self._reported_drops:
                return None
            self._reported_drops = drops
            return {"metric": self.dropped_metrics, "log": self.dropped_logs}

    # --- sending (the one sender thread) -------------------------------------------------------

    def next_batch(self) -> list[QueuedEvent] | None:
        """Wait for events and take the next batch; None once closed with nothing left.

        A batch is bounded by count and bytes and ends after a terminal status, so a refused
        status after the end never takes the events before it down with it.
        """
        with self.changed:
            self.changed.wait_for(lambda: self._queue or self.closed)
            batch: list[QueuedEvent] = []
            size = 0
            while self._queue and len(batch) < self.max_batch:
                ticket, item = next(iter(self._queue.items()))
                if batch and size + len(item.body) > self.max_batch_bytes:
                    break
                del self._queue[ticket]
                if item.key is not None and self._latest.get(item.key) == ticket:
                    del self._latest[item.key]
                batch.append(item)
                size += len(item.body) + 1
                if item.terminal:
                    break
            self.in_flight = len(batch)
            return batch or None

    def stored(self) -> None:
        """The batch in flight is stored."""
        with self.changed:
            self.sent += self.in_flight
            self.in_flight = 0
            self.changed.notify_all()

    def refuse(self) -> None:
        """The server refused the batch in flight: it and what waits are discarded, and so is
        every later event."""
        with self.changed:
            self.refused = True
            self.discarded += self.in_flight + len(self._queue)
            self.in_flight = 0
            self._queue.clear()
            self._latest.clear()
            self.changed.notify_all()

    def abandon(self) -> None:
        """The batch in flight was given up undelivered (the emitter is closing)."""
        with self.changed:
            self.in_flight = 0
            self.changed.notify_all()

    # --- waiting and closing -------------------------------------------------------------------

    def wait_drained(self, timeout_s: float) -> bool:
        """Wait until nothing waits or is in flight (True), the server refused the events, or
        `timeout_s` passed."""
        with self.changed:
            self.changed.wait_for(
                lambda: self.refused or not (self._queue or self.in_flight), timeout=timeout_s
            )
            return not (self._queue or self.in_flight)

    def close(self) -> int:
        """Accept nothing more and let the sender stop once nothing waits; answer how many
        events were still undelivered."""
        with self.changed:
            self.closed = True
            undelivered = len(self._queue) + self.in_flight
            self.changed.notify_all()
            return undelivered
