"""Getting a `RemoteEmitter`'s batches stored by a jobs server, each exactly once.

A batch goes as `{"events": [...]}` to `POST /api/jobs/{id}/events`.

- Transport errors, 429 and 5xx are retried with `Retry-After` or jittered exponential backoff,
  for as long as the emitter is open (and until `close`'s timeout: then `abort`). A batch whose
  answer was lost after it was sent is looked up in the job's log before it is sent again, so
  it is not stored twice.
- Any other 4xx (bad key, unknown or finished job, invalid event) is a refusal: it stops the
  emitter, `error` says why, what waits is discarded (see `.outbox`), and `flush`/`close` raise
  `RemoteEmitterError`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from synth_ai.task.client import error_from_response, retry_after_seconds

from .outbox import QueuedEvent

logger = logging.getLogger("synth_ai.jobs.remote")  # one logger for the remote emitter

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# httpx raises these before the request could have reached the server: safe to resend blindly
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_EVENTS_PER_POST = 1000  # the server's limit (synth_ai.jobs.routes)


class RemoteEmitterError(Exception):
    """The server refused the events (`status` is its answer) or they could not be delivered
    before `close`'s timeout (`status` is None)."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def auth_headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("ENVIRONMENT_API_KEY")
    return {"X-API-Key": key, "Authorization": f"Bearer {key}"} if key else {}


def post_new_job(
    base_url: str,
    api_key: str | None,
    body: dict[str, Any],
    *,
    attempts: int,
    timeout_s: float,
    transport: httpx.BaseTransport | None,
) -> str:
    """Create a job (`POST /api/jobs`), retrying what is retryable; answer its id."""
    with httpx.Client(
        base_url=base_url.rstrip("/"),
        headers=auth_headers(api_key),
        timeout=timeout_s,
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
                job_id: str = response.json()["job_id"]
                return job_id
            if response.status_code not in RETRYABLE_STATUS or last:
                error = error_from_response(response)
                raise RemoteEmitterError(error.status, error.code, error.message)
            delay = retry_after_seconds(response.headers.get("retry-after"))
            time.sleep(delay if delay is not None else 0.2 * 2**attempt)
    raise AssertionError("unreachable")


class Delivery:
    """Posts one job's batches, one at a time, until each is stored, refused or abandoned.

    `deliver` runs on the emitter's sender thread only; `abort` may be called from any thread.
    """

    def __init__(
        self,
        base_url: str,
        job_id: str,
        api_key: str | None,
        *,
        timeout_s: float,
        backoff_s: float,
        max_backoff_s: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.job_id = job_id
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._http = httpx.Client(
            base_url=base_url,
            headers=auth_headers(api_key),
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )
        self._abort = threading.Event()
        """Set when `close` gives up: the sender stops retrying."""
        self._last_seq = 0
        """The highest seq the server answered this emitter (where lost answers are looked up)."""
        self.posts = self.retries = 0
        """Counted by the sender thread alone."""

    def abort(self) -> None:
        """Stop retrying: a batch being delivered is given up, and none is posted any more."""
        self._abort.set()

    def close(self) -> None:
        self._http.close()

    def deliver(self, batch: Sequence[QueuedEvent]) -> RemoteEmitterError | bool | None:
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
                self.posts += 1
                if attempt:
                    self.retries += 1
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

    def _find_stored(self, batch: Sequence[QueuedEvent]) -> int | None:
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
