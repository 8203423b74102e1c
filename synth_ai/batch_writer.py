"""One writer thread fed by a bounded queue, handing its handler batches of items.

Producers on the event loop never block it: `submit` is `put_nowait`, and when the queue is
full, `submit_async` waits for room in a worker thread. A batch that fails is counted and logged
at warning level; nothing is dropped without a count.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger("synth_ai.batch_writer")

T = TypeVar("T")

_STOP = object()


class BatchWriter(Generic[T]):
    """Calls `handle(batch)` from its own thread with up to `max_batch` items at a time,
    collected for at most `flush_interval_s` after the first one arrives. The handler answers
    how many items of the batch it could not write (raising counts the whole batch)."""

    def __init__(
        self,
        handle: Callable[[list[T]], int],
        *,
        name: str,
        max_queue: int = 10_000,
        max_batch: int = 500,
        flush_interval_s: float = 0.1,
        put_timeout_s: float = 5.0,
        weight: Callable[[T], int] = lambda item: 1,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self._handle = handle
        self._on_stop = on_stop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._flush_interval_s = flush_interval_s
        self._put_timeout_s = put_timeout_s
        self._weight = weight
        self._idle = threading.Condition()
        self._pending = 0
        self.written = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._pending

    def submit(self, item: T) -> bool:
        """Queue without waiting; False (counted as an error) when the queue is full."""
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._lost(1, "queue full")
            return False
        return True

    async def submit_async(self, item: T) -> bool:
        """Queue from the event loop; when full, wait for room off the loop, up to a timeout.

        The wait is shielded: a cancelled caller does not lose the item or its count.
        """
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            pass
        return await asyncio.shield(asyncio.to_thread(self._put_waiting, item))

    def _put_waiting(self, item: T) -> bool:
        try:
            self._queue.put(item, True, self._put_timeout_s)
        except queue.Full:
            self._lost(1, f"queue still full after {self._put_timeout_s:g} s")
            return False
        return True

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything submitted so far is handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def _lost(self, count: int, reason: str) -> None:
        with self._idle:
            self.errors += count
            self._pending -= count
            self._idle.notify_all()
        logger.warning("%s: %d item(s) not written: %s", self._thread.name, count, reason)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._on_stop()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            size = self._weight(first)  # type: ignore[arg-type]
            deadline = time.monotonic() + self._flush_interval_s
            stop = False
            while size < self._max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                size += self._weight(item)  # type: ignore[arg-type]
            try:
                failed = self._handle(batch)  # type: ignore[arg-type]
            except Exception as exc:
                self._lost(len(batch), f"{type(exc).__name__}: {exc}")
            else:
                if failed:
                    self._lost(failed, "rejected by the handler")
                with self._idle:
                    self.written += len(batch) - failed
                    self._pending -= len(batch) - failed
                    self._idle.notify_all()
            if stop:
                return
