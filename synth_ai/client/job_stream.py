"""Reading a job's events from a server: a resumable SSE stream, or polling where there is none."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from synth_ai.job_events.models import JobEvent
from synth_ai.task.answers import (
    LOCKED_OUT,
    error_from_response,
    retry_after_seconds,
)

logger = logging.getLogger("synth_ai.jobs.client")

DEFAULT_RETRY_FOR_S = 60.0
NO_KEY_CODE = "missing_environment_api_key"


class JobStreamError(Exception):
    """The job cannot be streamed: unknown job, refused key, or the retry budget is spent
    (`status` is then None and `code` is `unreachable`); `url` is what was asked."""

    def __init__(
        self, status: int | None, code: str, message: str, *, url: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.url = url


def is_transient(status: int | None, code: str | None = None) -> bool:
    """Worth retrying: no answer at all, 429 (but for an address locked out for wrong keys),
    or a 5xx other than "the server has no key"."""
    if status is None:
        return True
    return (status == 429 or status >= 500) and code not in (NO_KEY_CODE, LOCKED_OUT)


class _Seen:
    """Ids already yielded (bounded), so replays after a reconnect are not yielded twice."""

    def __init__(self, size: int = 10_000) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size
        self.last = 0

    def add(self, seq: int) -> bool:
        if seq in self._ids:
            return False
        self._ids.add(seq)
        self._order.append(seq)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        self.last = max(self.last, seq)
        return True


class _Budget:
    """How long (and how many times) to keep retrying through one outage.

    An outage starts with a failed attempt and ends when the server answers with something
    (`ok`); `failed` waits a jittered backoff, never past the budget, or raises
    `JobStreamError(None, "unreachable")` naming the URL once the budget is spent.
    """

    def __init__(
        self,
        url: str,
        retry_for_s: float | None,
        max_reconnects: int | None,
        backoff_s: float,
        max_backoff_s: float,
    ) -> None:
        self.url = url
        self.retry_for_s = retry_for_s
        self.max_reconnects = max_reconnects
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.failures = 0
        self.since: float | None = None  # when the current outage began

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def ok(self) -> None:
        self.failures = 0
        self.since = None

    def remaining(self) -> float | None:
        if self.retry_for_s is None:
            return None
        if self.since is None:
            return self.retry_for_s
        return self.retry_for_s - (self._now() - self.since)

    def connect_timeout(self, default: float = 30.0) -> float:
        """A connection attempt never outlasts the budget by much."""
        left = self.remaining()
        return default if left is None else max(0.2, min(default, left))

    async def failed(self, reason: str, delay: float | None = None, *, quiet: bool = False) -> None:
        self.failures += 1
        if self.since is None:
            self.since = self._now()
        left = self.remaining()
        if self.failures == 2 and not quiet and (left is None or left > 0):
            # one drop is routine; a reconnection that fails too is worth a line
            logger.warning(
                "cannot reach %s (%s); retrying%s",
                self.url,
                reason,
                "" if left is None else f" for up to {left:.3g} s more",
            )
        over_count = self.max_reconnects is not None and self.failures > self.max_reconnects
        if over_count or (left is not None and left <= 0):
            spent = self._now() - (self.since or self._now())
            raise JobStreamError(
                None,
                "unreachable",
                f"cannot reach {self.url} ({reason}); gave up after {spent:.3g} s "
                f"and {self.failures} attempts",
                url=self.url,
            )
        wait = random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**self.failures))
        if delay is not None:
            wait = max(wait, delay)
        if left is not None:
            wait = min(wait, left)
        await asyncio.sleep(wait)


def _error(response: httpx.Response) -> JobStreamError:
    error = error_from_response(response)
    return JobStreamError(error.status, error.code, error.message, url=str(response.url))


def _url(http: httpx.AsyncClient, path: str) -> str:
    return str(http.base_url).rstrip("/") + path


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def stream_job(
    http: httpx.AsyncClient,
    job_id: str,
    *,
    types: Sequence[str] | None = None,
    since_id: int | None = None,
    split: str | None = None,
    heartbeat_s: float | None = None,
    retry_for_s: float | None = DEFAULT_RETRY_FOR_S,
    max_reconnects: int | None = None,
    backoff_s: float = 0.25,
    max_backoff_s: float = 8.0,
    poll_interval_s: float = 1.0,
    poll_only: bool = False,
) -> AsyncIterator[JobEvent]:
    """Yield a job's events in order until its stream ends (after a terminal status).

    Reconnects with `Last-Event-ID` and jittered backoff when the connection drops, the
    server is briefly unavailable (429, 502-504) or says the stream lagged; never yields an id
    twice. Falls back to polling the `events` route when the server has no stream route
    (404/405 without a job error).

    Gives up with `JobStreamError`:
    - at once on a refusal: 401/403, 404 `job_not_found`, 503 `missing_environment_api_key`
      (the server has no key configured), 429 `too_many_failed_attempts` (this address sent
      wrong keys), or any other 4xx/500 (`status` and `code` say which);
    - with `code="unreachable"` when one outage (from the first attempt, or from the last
      time the server answered) lasts `retry_for_s` seconds (None: forever) or more than
      `max_reconnects` consecutive attempts fail (None: no count limit).
    """
    seen = _Seen()
    seen.last = since_id or 0
    path = f"/api/jobs/{job_id}/stream"
    budget = _Budget(_url(http, path), retry_for_s, max_reconnects, backoff_s, max_backoff_s)
    params: dict[str, Any] = {}
    if types:
        params["types"] = ",".join(types)
    if split:
        params["split"] = split
    if heartbeat_s:
        params["heartbeat"] = heartbeat_s
    if poll_only:
        async for event in _poll(http, job_id, seen, types, poll_interval_s, budget):
            yield event
        return
    while True:
        headers = {"Last-Event-ID": str(seen.last)} if seen.last else {}
        ended = False
        retry_after: float | None = None
        try:
            async with aconnect_sse(
                http,
                "GET",
                path,
                params=params,
                headers=headers,
                timeout=httpx.Timeout(30.0, connect=budget.connect_timeout(), read=None),
            ) as source:
                response = source.response
                if response.status_code == 204:
                    return  # the job has ended and we have every event
                if response.status_code in (404, 405):
                    await response.aread()
                    error = _error(response)
                    if error.code == "job_not_found":
                        raise error
                    async for event in _poll(http, job_id, seen, types, poll_interval_s, budget):
                        yield event
                    return
                if response.status_code >= 400:
                    await response.aread()
                    error = _error(response)
                    if not is_transient(error.status, error.code):
                        raise error
                    retry_after = retry_after_seconds(response.headers.get("retry-after"))
                    raise httpx.TransportError(f"{error.status} {error.code}: {error.message}")
                async for sse in source.aiter_sse():
                    budget.ok()  # the server is there and streaming (its first frame is `retry:`)
                    if sse.event == "end":
                        ended = True
                        break
                    if sse.event == "lagged":
                        logger.info("stream of %s lagged; resuming from %d", job_id, seen.last)
                        break
                    if not sse.id or not sse.data or sse.event == "reset":
                        continue  # httpx-sse turns a `: keep-alive` into an event with no data
                    event = JobEvent.from_wire(json.loads(sse.data))
                    if seen.add(event.seq):
                        yield event
        except (httpx.TransportError, SSEError) as exc:
            logger.debug("stream of %s dropped (%s); reconnecting", job_id, exc)
            await budget.failed(_reason(exc), retry_after)
            continue
        if ended:
            return
        await budget.failed("the stream closed before the job ended", quiet=True)


async def _get(http: httpx.AsyncClient, path: str, budget: _Budget, **kwargs: Any) -> Any:
    """GET within the budget: transient failures are retried, refusals raised at once."""
    while True:
        retry_after: float | None = None
        try:
            response = await http.get(
                path, timeout=httpx.Timeout(30.0, connect=budget.connect_timeout()), **kwargs
            )
        except httpx.TransportError as exc:
            reason = _reason(exc)
        else:
            if response.status_code < 400:
                budget.ok()
                return response.json()
            error = _error(response)
            if not is_transient(error.status, error.code):
                raise error
            reason = f"{error.status} {error.code}: {error.message}"
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
        await budget.failed(reason, retry_after)


async def _poll(
    http: httpx.AsyncClient,
    job_id: str,
    seen: _Seen,
    types: Sequence[str] | None,
    interval_s: float,
    budget: _Budget,
) -> AsyncIterator[JobEvent]:
    params: dict[str, Any] = {"limit": 500}
    if types:
        params["types"] = ",".join(types)
    budget.url = _url(http, f"/api/jobs/{job_id}/events")
    while True:
        answer = await _get(
            http, f"/api/jobs/{job_id}/events", budget, params={**params, "since_seq": seen.last}
        )
        page = answer["events"]
        for item in page:
            event = JobEvent.model_validate(item)
            if seen.add(event.seq):
                yield event
                if event.state is not None and event.state.terminal:
                    return
        if not page:
            status = await _get(http, f"/api/jobs/{job_id}", budget)
            if status.get("state") in ("succeeded", "failed", "canceled"):
                return
            await asyncio.sleep(interval_s)
