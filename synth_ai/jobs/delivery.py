"""Getting a `RemoteEmitter`'s batches stored by a jobs server, each exactly once.

A batch goes as `{"events": [...]}` to `POST /api/jobs/{id}/events`.

- Each batch carries an `Idempotency-Key` of its own, the same on every retry: the server stores
  a key once per job and answers a retry the seqs it first assigned, so a batch whose answer was
  lost (a timeout while the server's commit was still on its way) is never stored twice.
- Transport errors, 429 and 5xx are retried with `Retry-After` or jittered exponential backoff,
  for as long as the emitter is open (and until `close`'s timeout: then `abort`).
- A 429 `too_many_failed_attempts` (the address sent wrong keys) and any other 4xx (bad key,
  unknown or finished job, invalid event) is a refusal: it stops the emitter, `error` says why,
  what waits is discarded (see `.outbox`), and `flush`/`close` raise `RemoteEmitterError`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from synth_ai.task.answers import LOCKED_OUT, error_from_response, retry_after_seconds

from .outbox import QueuedEvent

logger = logging.getLogger("synth_ai.jobs.remote")  # one logger for the remote emitter

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retryable(response: httpx.Response) -> bool:
    """Worth posting again: a `RETRYABLE_STATUS`, but for the 429 of an address locked out for
    wrong keys (final: sending the same key again only fails again)."""
    return (
        response.status_code in RETRYABLE_STATUS
        and error_from_response(response).code != LOCKED_OUT
    )


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
            if not retryable(response) or last:
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
        self.posts = self.retries = 0
        """Counted by the sender thread alone."""

    @property
    def http(self) -> httpx.Client:
        """The client that posts (the server's URL, the key); an upload shares it."""
        return self._http

    def abort(self) -> None:
        """Stop retrying: a batch being delivered is given up, and none is posted any more."""
        self._abort.set()

    def close(self) -> None:
        self._http.close()

    def deliver(self, batch: Sequence[QueuedEvent]) -> RemoteEmitterError | bool | None:
        """Post one batch until it is stored (None), refused (the error), or aborted (False)."""
        body = b'{"events":[' + b",".join(item.body for item in batch) + b"]}"
        path = f"/api/jobs/{self.job_id}/events"
        headers = {"content-type": "application/json", "idempotency-key": uuid.uuid4().hex}
        attempt = 0
        while not self._abort.is_set():
            delay: float | None = None
            self.posts += 1
            if attempt:
                self.retries += 1
            try:
                response = self._http.post(path, content=body, headers=headers)
            except httpx.TransportError as exc:
                logger.info("posting events of %s failed (%s); retrying", self.job_id, exc)
            else:
                if response.status_code < 400:
                    return None
                if not retryable(response):
                    error = error_from_response(response)
                    return RemoteEmitterError(error.status, error.code, error.message)
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
