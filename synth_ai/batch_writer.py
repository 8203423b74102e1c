"""One writer thread fed by a bounded queue, committing what it is given in group commits.

The writer takes everything queued (up to a batch) and hands it to its handler as one batch, so
one transaction covers many items; it never waits for more to arrive. The handler answers one
outcome per item (a value, or the exception that item met), so one bad item never fails the
rest. `write` waits for the item's commit: its answer is an acknowledgement that the item is
stored. `submit` is fire-and-forget; a failure is counted and logged at warning level, never
dropped without a count. A refusal (one of `refusals`: the caller's own mistake, a 4xx) handed
to a waiting caller is that caller's answer, not a write failure, so it is not counted.
Producers on the event loop never block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger("synth_ai.batch_writer")

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class WriterUnavailable(Exception):
    """The writer could not take the item (queue full past the timeout, or closed)."""


@dataclass(slots=True)
class _Entry(Generic[T]):
    item: T
    future: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None


class WriteFailures:
    """Counts of refused items and the last reason, logged at most once per interval."""

    def __init__(self, name: str, log_interval_s: float = 30.0) -> None:
        self.name = name
        self.count = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self._log_interval_s = log_interval_s
        self._logged_at = float("-inf")
        self._unlogged = 0
        self._lock = threading.Lock()

    def failed(self, count: int, reason: str) -> None:
        with self._lock:
            self.count += count
            self._unlogged += count
            self.last_error, self.last_error_at = reason, time.time()
            now = time.monotonic()
            if now - self._logged_at < self._log_interval_s:
                return
            unlogged, self._unlogged, self._logged_at = self._unlogged, 0, now
        logger.warning("%s: %d item(s) not written: %s", self.name, unlogged, reason)

    def succeeded(self) -> None:
        self.last_success_at = time.time()

    @property
    def healthy(self) -> bool:
        """No failure since the last success."""
        if self.last_error_at is None:
            return True
        return self.last_success_at is not None and self.last_success_at > self.last_error_at


class BatchWriter(Generic[T, R]):
    """Calls `handle(batch)` from its own thread with up to `max_batch` (by weight) items.

    `handle` answers one outcome per item: its result, or an exception for an item it refused.
    Raising fails the whole batch with that exception.
    """

    def __init__(
        self,
        handle: Callable[[list[T]], list[R | BaseException]],
        *,
        name: str,
        max_queue: int = 10_000,
        max_batch: int = 500,
        put_timeout_s: float = 5.0,
        weight: Callable[[T], int] = lambda item: 1,
        on_stop: Callable[[], None] = lambda: None,
        refusals: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._handle = handle
        self._refusals = refusals
        self._on_stop = on_stop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._put_timeout_s = put_timeout_s
        self._weight = weight
        self._idle = threading.Condition()
        self._pending = 0
        self._closed = False
        self.written = 0
        self.failures = WriteFailures(name)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self._thread.name

    @property
    def queued(self) -> int:
        return self._pending

    @property
    def errors(self) -> int:
        return self.failures.count

    def submit(self, item: T, *, count_loss: bool = True) -> bool:
        """Queue without waiting and without an acknowledgement; False when the queue is full
        (counted as a loss unless the caller will try again)."""
        return self._put_nowait(_Entry(item), count_loss=count_loss)

    async def write(self, item: T) -> R:
        """Queue from the event loop and answer once the item is committed.

        Raises the item's own exception when the handler refused it, and `WriterUnavailable`
        when the queue stayed full past the timeout. The wait is shielded: a cancelled caller
        does not take the item back, it is committed all the same.
        """
        loop = asyncio.get_running_loop()
        entry: _Entry[T] = _Entry(item, loop.create_future(), loop)
        assert entry.future is not None
        if not self._put_nowait(entry, count_loss=False):
            with self._idle:
                self._pending += 1
            queued = await asyncio.shield(asyncio.to_thread(self._put_waiting, entry))
            if not queued:
                raise WriterUnavailable(
                    f"{self.name}: queue still full after {self._put_timeout_s:g} s"
                )
        return await asyncio.shield(entry.future)  # type: ignore[no-any-return]

    def _put_nowait(self, entry: _Entry[T], count_loss: bool = True) -> bool:
        with self._idle:  # held while queuing, so nothing lands behind `close`'s stop
            if self._closed:
                raise WriterUnavailable(f"{self.name}: closed")
            self._pending += 1
            try:
                self._queue.put_nowait(entry)
            except queue.Full:
                self._settle(0, 1)
                if count_loss:
                    self.failures.failed(1, "queue full")
                return False
        return True

    def _put_waiting(self, entry: _Entry[T]) -> bool:
        try:
            self._queue.put(entry, True, self._put_timeout_s)
        except queue.Full:
            self._settle(0, 1)
            self.failures.failed(1, f"queue still full after {self._put_timeout_s:g} s")
            return False
        with self._idle:
            closed = self._closed
        if closed:  # it may have landed behind the stop: nobody else would answer it
            self._refuse_queued()
        return True

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything submitted so far is handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Handle what is queued (waiting up to `timeout_s`), then stop. What is still queued
        then fails with `WriterUnavailable`, and so does anything submitted later."""
        self.flush(timeout_s)
        with self._idle:
            self._closed = True
        self._refuse_queued()
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def _refuse_queued(self) -> None:
        """Fail every item still queued with `WriterUnavailable` (the writer is closing)."""
        refused: list[_Entry[T]] = []
        stop = False
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                stop = True
            else:
                refused.append(entry)  # type: ignore[arg-type]
        if stop:
            self._queue.put_nowait(_STOP)
        if not refused:
            return
        closed = WriterUnavailable(f"{self.name}: closed before this item was written")
        self.failures.failed(len(refused), str(closed))
        for entry in refused:
            if entry.future is not None and entry.loop is not None:
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                    entry.loop.call_soon_threadsafe(_resolve, [(entry.future, closed)])
        self._settle(0, len(refused))

    def _settle(self, written: int, failed: int) -> None:
        with self._idle:
            self.written += written
            self._pending -= written + failed
            self._idle.notify_all()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._on_stop()

    def _next_batch(self) -> tuple[list[_Entry[T]], bool]:
        """The first item (waiting for it), then whatever else is queued: a group commit."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch: list[_Entry[T]] = [first]  # type: ignore[list-item]
        size = self._weight(batch[0].item)
        while size < self._max_batch:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                return batch, True
            batch.append(entry)  # type: ignore[arg-type]
            size += self._weight(entry.item)  # type: ignore[attr-defined]
        return batch, False

    def _loop(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Entry[T]]) -> None:
        """Handle one batch and answer every item of it, whatever the handler does (raises,
        answers too few or too many outcomes): one waiter left unanswered would hang its
        caller, and every caller in the batch behind it."""
        outcomes: list[Any]
        try:
            outcomes = self._handle([entry.item for entry in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(
                    f"{self.name}: the handler answered {len(outcomes)} outcomes "
                    f"for {len(batch)} items"
                )
        except Exception as exc:
            outcomes = [exc] * len(batch)
        outcomes = [_settable(outcome) for outcome in outcomes]
        unwritten = [o for o in outcomes if isinstance(o, BaseException)]
        failed = [
            outcome
            for entry, outcome in zip(batch, outcomes, strict=True)
            if isinstance(outcome, BaseException)
            and not (entry.future is not None and isinstance(outcome, self._refusals))
        ]
        if failed:
            self.failures.failed(len(failed), f"{type(failed[-1]).__name__}: {failed[-1]}")
        if len(unwritten) < len(outcomes):
            self.failures.succeeded()
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for entry, outcome in zip(batch, outcomes, strict=True):
            if entry.future is not None and entry.loop is not None:
                by_loop.setdefault(entry.loop, []).append((entry.future, outcome))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_resolve, settled)
        self._settle(len(outcomes) - len(unwritten), len(unwritten))


def _settable(outcome: Any) -> Any:
    """An outcome a future can hold: `StopIteration` cannot be set on one (asyncio refuses it
    with TypeError), so it is carried inside a RuntimeError, as generators do."""
    if isinstance(outcome, StopIteration | StopAsyncIteration):
        error = RuntimeError(f"{type(outcome).__name__}: {outcome}")
        error.__cause__ = outcome
        return error
    return outcome


def _resolve(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
