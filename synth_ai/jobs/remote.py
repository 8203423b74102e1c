"""`RemoteEmitter`: a training loop in another process reports to a jobs server over HTTP.

It has `JobEmitter`'s methods (`emit`, `emit_status`, `emit_metric`, `emit_log`,
`emit_artifact`; both satisfy the `Emitter` protocol), so one loop runs in-process or remote.
`emit*` only validates, encodes and queues; a background thread posts what is queued as
`{"events": [...]}` batches to `POST /api/jobs/{id}/events`, one batch at a time, so the
server stores events in the order they were emitted.

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
  `emitter_dropped: {"metric": n, "log": m}` (running totals) are added to its data.
- Transport errors, 429 and 5xx are retried with `Retry-After` or jittered exponential backoff,
  for as long as the emitter is open (and until `close`'s timeout). A batch whose answer was
  lost after it was sent is looked up in the job's log before it is sent again, so it is not
  stored twice. Any other 4xx (bad key, unknown or finished job, invalid event) stops the
  emitter: `error` says why, what waits is discarded, later emits are counted no-ops
  (`stats.discarded`), and `flush`/`close` raise `RemoteEmitterError`.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import httpx

from synth_ai.task.client import error_from_response, retry_after_seconds

from .models import EventIn, JobState, finite_json, sse_name

logger = logging.getLogger("synth_ai.jobs.remote")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# httpx raises these before the request could have reached the server: safe to resend blindly
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_EVENTS_PER_POST = 1000  # the server's limit (synth_ai.jobs.routes)


@runtime_checkable
class Emitter(Protocol):
    """What a training or eval loop reports through: `JobEmitter` (in-process) and
    `RemoteEmitter` (over HTTP) both are one."""

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None: ...

    def emit_status(
        self, state: JobState | str, message: str | None = None, **fields: Any
    ) -> None: ...

    def emit_metric(
        self,
        name: str,
        value: float,
        *,
        step: int | None = None,
        split: str | None = None,
        type: str = "job.metric",
        **fields: Any,
    ) -> None: ...

    def emit_log(self, message: str, level: str = "info", type: str = "system.log") -> None: ...

    def emit_artifact(
        self, kind: str, url: str, *, step: int | None = None, **fields: Any
    ) -> None: ...


class RemoteEmitterError(Exception):
    """The server refused the events (`status` is its answer) or they could not be delivered
    before `close`'s timeout (`status` is None)."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class EmitterStats:
    queued: int
    """Waiting to be sent (not counting a batch in flight)."""
    in_flight: int
    sent: int
    """Acknowledged by the server (committed)."""
    posts: int
    retries: int
    coalesced: int
    """Metric values replaced by a newer value of the same metric while the queue was full."""
    dropped_metrics: int
    dropped_logs: int
    discarded: int
    """Events thrown away because the server refused this emitter (see `error`)."""


@dataclass(slots=True)
class _Item:
    body: bytes
    type: str
    ts: float
    key: tuple[str, str, str] | None
    """`(type, name, split)` of a metric; None for events that are never coalesced."""
    terminal: bool


class RemoteEmitter:
    """Posts a job's events to a jobs server from a background thread (see the module doc).

    Use it as a context manager, or call `close()` at the end: it waits (up to its timeout)
    until everything emitted is stored. `flush()` waits without closing. Emitting after
    `close()` raises `RuntimeError`; an emitter left open is closed at interpreter exit
    (waiting up to 5 s). `emit*` may be called from any thread.
    """

    def __init__(
        self,
        base_url: str,
        job_id: str,
        api_key: str | None = None,
        *,
        max_queue: int = 10_000,
        max_buffered: int | None = None,
        max_batch: int = 500,
        max_batch_bytes: int = 1024 * 1024,
        max_event_bytes: int = 512 * 1024,
        timeout_s: float = 30.0,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_queue < 1 or not 1 <= max_batch <= MAX_EVENTS_PER_POST:
            raise ValueError(f"max_queue >= 1 and 1 <= max_batch <= {MAX_EVENTS_PER_POST}")
        self.base_url = base_url.rstrip("/")
        self.job_id = job_id
        self.max_queue = max_queue
        self.max_buffered = max_buffered if max_buffered is not None else 10 * max_queue
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_event_bytes = max_event_bytes
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.error: RemoteEmitterError | None = None
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_auth_headers(api_key),
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: OrderedDict[int, _Item] = OrderedDict()
        self._latest: dict[tuple[str, str, str], int] = {}
        """The ticket of the newest waiting metric of each key."""
        self._ticket = 0
        self._in_flight = 0
        self._closing = False
        self._closed = False
        self._abort = threading.Event()
        """Set when `close` gives up: the sender stops retrying."""
        self._last_seq = 0
        """The highest seq the server answered this emitter (where lost answers are looked up)."""
        self._sent = self._posts = self._retries = 0
        self._coalesced = self._dropped_metrics = self._dropped_logs = self._discarded = 0
        self._reported_drops = 0
        self._thread = threading.Thread(
            target=self._run, name=f"remote-emitter:{job_id}", daemon=True
        )
        self._thread.start()
        atexit.register(self._close_at_exit)

    @classmethod
    def create_job(
        cls,
        base_url: str,
        api_key: str | None = None,
        *,
        config: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        attempts: int = 5,
        **options: Any,
    ) -> RemoteEmitter:
        """Create a `custom` job on the server and answer an emitter for it (`.job_id`)."""
        body = {"kind": "custom", "config": config or {}, "metadata": metadata or {}}
        transport = options.get("transport")
        with httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=_auth_headers(api_key),
            timeout=options.get("timeout_s", 30.0),
            transport=transport,
        ) as http:
            for attempt in range(attempts):
                last = attempt == attempts - 1
                try:
                    response = http.post("/api/jobs", json=body)
                except httpx.TransportError as exc:
                    if last:
                        raise RemoteEmitterError(
                            None, "transport_error", f"{type(exc).__name__}: {exc}"
                        ) from exc
                    time.sleep(random.uniform(0, min(5.0, 0.2 * 2**attempt)))
                    continue
                if response.status_code < 400:
                    return cls(base_url, response.json()["job_id"], api_key, **options)
                if response.status_code not in RETRYABLE_STATUS or last:
                    error = error_from_response(response)
                    raise RemoteEmitterError(error.status, error.code, error.message)
                delay = retry_after_seconds(response.headers.get("retry-after"))
                time.sleep(delay if delay is not None else 0.2 * 2**attempt)
        raise AssertionError("unreachable")

    # --- producing (any thread; never waits on the network) -------------------------------------

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        data = dict(data or {})
        name = sse_name(type)
        state = None
        if name == "status":
            try:
                state = JobState(str(data.get("state")))
            except ValueError:
                state = None
            with self._lock:
                drops = self._dropped_metrics + self._dropped_logs
                if drops > self._reported_drops:
                    self._reported_drops = drops
                    data["dropped_events"] = True
                    data["emitter_dropped"] = {
                        "metric": self._dropped_metrics,
                        "log": self._dropped_logs,
                    }
        now = time.time()
        event = EventIn(type=type, level=level, message=message, data=finite_json(data), ts=now)
        body = event.model_dump_json(exclude_none=True).encode()
        if len(body) > self.max_event_bytes:
            raise ValueError(
                f"a {type} event of {len(body)} bytes is larger than max_event_bytes "
                f"({self.max_event_bytes}); store big payloads as artifacts"
            )
        key = (type, str(data.get("name")), str(data.get("split"))) if name == "metric" else None
        item = _Item(body, type, now, key, state is not None and state.terminal)
        self._put(item, name)

    def _put(self, item: _Item, name: str) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this RemoteEmitter is closed")
            if self.error is not None:
                self._discarded += 1
                return
            waiting = len(self._queue)
            if item.key is not None and waiting >= self.max_queue:
                twin = self._latest.get(item.key)
                if twin is None:
                    self._dropped_metrics += 1
                    return
                del self._queue[twin]
                self._coalesced += 1
            elif name == "log" and waiting >= self.max_buffered:
                self._dropped_logs += 1
                return
            self._ticket += 1
            self._queue[self._ticket] = item
            if item.key is not None:
                self._latest[item.key] = self._ticket
            self._changed.notify_all()

    def emit_status(self, state: JobState | str, message: str | None = None, **fields: Any) -> None:
        data = {"state": JobState(state).value, "message": message, **fields}
        self.emit("job.status", message=message, data=data)

    def emit_metric(
        self,
        name: str,
        value: float,
        *,
        step: int | None = None,
        split: str | None = None,
        type: str = "job.metric",
        **fields: Any,
    ) -> None:
        self.emit(type, data={"name": name, "value": value, "step": step, "split": split, **fields})

    def emit_log(self, message: str, level: str = "info", type: str = "system.log") -> None:
        self.emit(type, message=message, level=level, data={"level": level, "message": message})

    def emit_artifact(self, kind: str, url: str, *, step: int | None = None, **fields: Any) -> None:
        self.emit(f"artifact.{kind}", data={"kind": kind, "url": url, "step": step, **fields})

    # --- waiting -------------------------------------------------------------------------------

    @property
    def stats(self) -> EmitterStats:
        with self._lock:
            return EmitterStats(
                queued=len(self._queue),
                in_flight=self._in_flight,
                sent=self._sent,
                posts=self._posts,
                retries=self._retries,
                coalesced=self._coalesced,
                dropped_metrics=self._dropped_metrics,
                dropped_logs=self._dropped_logs,
                discarded=self._discarded,
            )

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything emitted so far is stored; False on timeout.

        Raises `RemoteEmitterError` when the server refused this emitter's events.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: self.error is not None or not (self._queue or self._in_flight),
                timeout=timeout_s,
            )
            if self.error is not None:
                raise self.error
            return not (self._queue or self._in_flight)

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what waits (retrying for up to `timeout_s`), then stop.

        Raises `RemoteEmitterError` when the server refused the events, or when some were still
        undelivered at the timeout.
        """
        with self._changed:
            if self._closed:
                return
            self._closing = True
            self._changed.notify_all()
        try:
            delivered = self.flush(timeout_s)
        finally:
            self._abort.set()  # first: a sender woken by the close below posts nothing more
            with self._changed:
                self._closed = True
                undelivered = len(self._queue) + self._in_flight
                self._changed.notify_all()
            self._thread.join(self.max_backoff_s + 5.0)
            self._http.close()
            atexit.unregister(self._close_at_exit)
        if not delivered:
            raise RemoteEmitterError(
                None,
                "undelivered",
                f"{undelivered} events for {self.job_id} were not stored within {timeout_s:g} s"
                f" ({self.base_url} did not accept them)",
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:  # the body's own exception is the one to see
            self.close()
        except RemoteEmitterError as error:
            logger.error("events of %s not delivered: %s", self.job_id, error)

    def _close_at_exit(self) -> None:
        try:
            self.close(timeout_s=5.0)
        except RemoteEmitterError as error:
            logger.error("events of %s not delivered at exit: %s", self.job_id, error)

    # --- the sender thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return  # closed and nothing left
                batch = self._take()
            outcome = self._deliver(batch)
            with self._changed:
                self._in_flight = 0
                if outcome is None:
                    self._sent += len(batch)
                elif isinstance(outcome, RemoteEmitterError):
                    self.error = outcome
                    self._discarded += len(batch) + len(self._queue)
                    self._queue.clear()
                    self._latest.clear()
                    logger.error("the jobs server refused events of %s: %s", self.job_id, outcome)
                self._changed.notify_all()
                if outcome is not None and not isinstance(outcome, RemoteEmitterError):
                    return  # aborted by close

    def _take(self) -> list[_Item]:
        """The next batch (lock held): by count and bytes, ending after a terminal status, so
        a refused status after the end never takes the events before it down with it."""
        batch: list[_Item] = []
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
        self._in_flight = len(batch)
        return batch

    def _deliver(self, batch: list[_Item]) -> RemoteEmitterError | bool | None:
        """Post one batch until it is stored (None), refused (the error), or aborted (False)."""
        body = b'{"events":[' + b",".join(item.body for item in batch) + b"]}"
        path = f"/api/jobs/{self.job_id}/events"
        maybe_stored = False
        attempt = 0
        while not self._abort.is_set():
            delay: float | None = None
            try:
                if maybe_stored:
                    last = self._find_stored(batch)
                    if last is not None:
                        self._last_seq = last
                        return None
                    maybe_stored = False
                self._count_post(attempt)
                response = self._http.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
            except httpx.TransportError as exc:
                maybe_stored = maybe_stored or not isinstance(exc, NOT_SENT)
                logger.info("posting events of %s failed (%s); retrying", self.job_id, exc)
            else:
                if response.status_code < 400:
                    seqs = response.json().get("seqs") or []
                    self._last_seq = max([self._last_seq, *seqs])
                    return None
                if response.status_code not in RETRYABLE_STATUS:
                    error = error_from_response(response)
                    return RemoteEmitterError(error.status, error.code, error.message)
                # 503 and 429 are answered before anything is stored; a bare 500 may come late
                maybe_stored = maybe_stored or response.status_code == 500
                delay = retry_after_seconds(response.headers.get("retry-after"))
                logger.info(
                    "the jobs server answered %d for events of %s; retrying",
                    response.status_code,
                    self.job_id,
                )
            if delay is None:
                delay = random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))
            attempt += 1
            self._abort.wait(delay)
        return False

    def _count_post(self, attempt: int) -> None:
        with self._lock:
            self._posts += 1
            if attempt:
                self._retries += 1

    def _find_stored(self, batch: list[_Item]) -> int | None:
        """After a lost answer: the last seq of the batch if the log has it (one append is one
        contiguous run of seqs), else None. Transport errors propagate (try again later)."""
        wanted = [(item.type, item.ts) for item in batch]
        after = self._last_seq
        window: list[tuple[str, float, int]] = []
        while True:
            response = self._http.get(
                f"/api/jobs/{self.job_id}/events", params={"since_seq": after, "limit": 1000}
            )
            if response.status_code >= 400:
                raise httpx.TransportError(f"looking up events answered {response.status_code}")
            page = response.json()["events"]
            window += [(e["type"], e["ts"], e["seq"]) for e in page]
            for start in range(len(window)):
                run = window[start : start + len(wanted)]
                if [(t, ts) for t, ts, _ in run] == wanted[: len(run)]:
                    if len(run) == len(wanted):
                        return run[-1][2]
                    break  # a match that continues past this page
            if len(page) < 1000:
                return None
            after = page[-1]["seq"]


def _auth_headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("ENVIRONMENT_API_KEY")
    return {"X-API-Key": key, "Authorization": f"Bearer {key}"} if key else {}
