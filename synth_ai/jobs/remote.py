"""`RemoteEmitter`: a training loop in another process reports to a jobs server over HTTP.

It has `JobEmitter`'s methods (`emit`, `emit_status`, `emit_metric`, `emit_log`,
`emit_artifact`; both satisfy the `Emitter` protocol), so one loop runs in-process or remote.
`upload_artifact(path)` (and `emit_artifact` given a local file) uploads a file to the job.
`emit*` only validates, encodes (as `JobEmitter` does: datetimes as ISO strings, array numbers
as Python numbers) and queues; a background thread posts what is queued as
`{"events": [...]}` batches to `POST /api/jobs/{id}/events`, one batch at a time, so the
server stores events in the order they were emitted.

The producer never waits on the network: what is queued, and what gives way under
backpressure, is `.outbox`'s rule; how a batch is posted, retried and stored exactly once,
and what stops the emitter, is `.delivery`'s.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from .delivery import MAX_EVENTS_PER_POST, Delivery, RemoteEmitterError, post_new_job
from .emitter import Emitter, plain_data
from .models import EventIn, JobState, finite_json, sse_name
from .outbox import Outbox, QueuedEvent
from .upload import put_file

logger = logging.getLogger("synth_ai.jobs.remote")


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


class RemoteEmitter(Emitter):
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
        """Why the server refused this emitter's events; set before the outbox discards them."""
        self._outbox = Outbox(
            max_queue=max_queue,
            max_buffered=self.max_buffered,
            max_batch=max_batch,
            max_batch_bytes=max_batch_bytes,
        )
        self._delivery = Delivery(
            self.base_url,
            job_id,
            api_key,
            timeout_s=timeout_s,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            transport=transport,
        )
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
        job_id = post_new_job(
            base_url,
            api_key,
            body,
            attempts=attempts,
            timeout_s=options.get("timeout_s", 30.0),
            transport=options.get("transport"),
        )
        return cls(base_url, job_id, api_key, **options)

    # --- producing (any thread; never waits on the network) -------------------------------------

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        data = plain_data(data)
        name = sse_name(type)
        state = None
        if name == "status":
            try:
                state = JobState(str(data.get("state")))
            except ValueError:
                state = None
            dropped = self._outbox.drops_to_report()
            if dropped is not None:
                data["dropped_events"] = True
                data["emitter_dropped"] = dropped
        event = EventIn(
            type=type, level=level, message=message, data=finite_json(data), ts=time.time()
        )
        body = event.model_dump_json(exclude_none=True).encode()
        if len(body) > self.max_event_bytes:
            raise ValueError(
                f"a {type} event of {len(body)} bytes is larger than max_event_bytes "
                f"({self.max_event_bytes}); store big payloads as artifacts"
            )
        key = (type, str(data.get("name")), str(data.get("split"))) if name == "metric" else None
        item = QueuedEvent(body, key, state is not None and state.terminal)
        self._outbox.put(item, name)

    def upload_artifact(
        self,
        path: str | Path,
        *,
        kind: str = "file",
        step: int | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Upload a local file as one of the job's artifacts (named `name`, else the file's
        name) and answer what the server stored; the server announces it as `artifact.<kind>`.
        Events emitted before are stored first, so the artifact comes after them. Waits on
        the network, unlike `emit*`; `ArtifactUploadError` when it cannot be done."""
        path = Path(path)
        self.flush()
        http = self._delivery.http
        return put_file(http, self.job_id, path, kind=kind, step=step, name=name or path.name)

    def upload_local(self, path: Path, *, kind: str, step: int | None) -> None:
        self.upload_artifact(path, kind=kind, step=step)

    # --- waiting -------------------------------------------------------------------------------

    @property
    def stats(self) -> EmitterStats:
        outbox = self._outbox
        with outbox.lock:
            return EmitterStats(
                queued=len(outbox),
                in_flight=outbox.in_flight,
                sent=outbox.sent,
                posts=self._delivery.posts,
                retries=self._delivery.retries,
                coalesced=outbox.coalesced,
                dropped_metrics=outbox.dropped_metrics,
                dropped_logs=outbox.dropped_logs,
                discarded=outbox.discarded,
            )

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything emitted so far is stored; False on timeout.

        Raises `RemoteEmitterError` when the server refused this emitter's events.
        """
        drained = self._outbox.wait_drained(timeout_s)
        if self.error is not None:
            raise self.error
        return drained

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what waits (retrying for up to `timeout_s`), then stop.

        Raises `RemoteEmitterError` when the server refused the events, or when some were still
        undelivered at the timeout.
        """
        if self._outbox.closed:
            return
        try:
            delivered = self.flush(timeout_s)
        finally:
            self._delivery.abort()  # first: a sender woken by the close below posts nothing more
            undelivered = self._outbox.close()
            self._thread.join(self.max_backoff_s + 5.0)
            self._delivery.close()
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
        while (batch := self._outbox.next_batch()) is not None:
            outcome = self._delivery.deliver(batch)
            if outcome is None:
                self._outbox.stored()
            elif isinstance(outcome, RemoteEmitterError):
                self.error = outcome  # before the outbox wakes `flush`, which raises it
                self._outbox.refuse()
                logger.error("the jobs server refused events of %s: %s", self.job_id, outcome)
            else:
                self._outbox.abandon()
                return  # aborted by close
