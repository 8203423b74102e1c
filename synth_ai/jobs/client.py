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

from synth_ai.task.client import error_from_response

from .models import JobEvent

logger = logging.getLogger("synth_ai.jobs.client")


class JobStreamError(Exception):
    """The job cannot be streamed: unknown job, refused key, or retries exhausted."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code


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


def _error(response: httpx.Response) -> JobStreamError:
    error = error_from_response(response)
    return JobStreamError(error.status, error.code, error.message)


async def stream_job(
    http: httpx.AsyncClient,
    job_id: str,
    *,
    types: Sequence[str] | None = None,
    since_id: int | None = None,
    split: str | None = None,
    heartbeat_s: float | None = None,
    max_reconnects: int = 20,
    backoff_s: float = 0.25,
    max_backoff_s: float = 8.0,
    poll_interval_s: float = 1.0,
    poll_only: bool = False,
) -> AsyncIterator[JobEvent]:
    """Yield a job's events in order until its stream ends (after a terminal status).

    Reconnects with `Last-Event-ID` and jittered backoff when the connection drops or the
    server says the stream lagged; never yields an id twice. Falls back to polling the
    `events` route when the server has no stream route (404/405 without a job error).
    """
    seen = _Seen()
    seen.last = since_id or 0
    params: dict[str, Any] = {}
    if types:
        params["types"] = ",".join(types)
    if split:
        params["split"] = split
    if heartbeat_s:
        params["heartbeat"] = heartbeat_s
    if poll_only:
        async for event in _poll(http, job_id, seen, types, poll_interval_s):
            yield event
        return
    failures = 0
    while True:
        headers = {"Last-Event-ID": str(seen.last)} if seen.last else {}
        ended = False
        try:
            async with aconnect_sse(
                http,
                "GET",
                f"/api/jobs/{job_id}/stream",
                params=params,
                headers=headers,
                timeout=httpx.Timeout(30.0, read=None),
            ) as source:
                response = source.response
                if response.status_code == 204:
                    return  # the job has ended and we have every event
                if response.status_code in (404, 405):
                    await response.aread()
                    error = _error(response)
                    if error.code == "job_not_found":
                        raise error
                    async for event in _poll(http, job_id, seen, types, poll_interval_s):
                        yield event
                    return
                if response.status_code >= 400:
                    await response.aread()
                    error = _error(response)
                    if response.status_code not in (429, 502, 503, 504):
                        raise error
                    raise httpx.TransportError(str(error))
                async for sse in source.aiter_sse():
                    if sse.event == "end":
                        ended = True
                        break
                    if sse.event == "lagged":
                        logger.info("stream of %s lagged; resuming from %d", job_id, seen.last)
                        break
                    if not sse.id or sse.event == "reset":
                        continue
                    event = JobEvent.from_wire(json.loads(sse.data))
                    failures = 0
                    if seen.add(event.seq):
                        yield event
        except (httpx.TransportError, SSEError) as exc:
            failures += 1
            if failures > max_reconnects:
                raise JobStreamError(None, "stream_failed", f"gave up after {exc}") from exc
            logger.info("stream of %s dropped (%s); reconnecting", job_id, exc)
        if ended:
            return
        await asyncio.sleep(random.uniform(0, min(max_backoff_s, backoff_s * 2**failures)))


async def _poll(
    http: httpx.AsyncClient,
    job_id: str,
    seen: _Seen,
    types: Sequence[str] | None,
    interval_s: float,
) -> AsyncIterator[JobEvent]:
    params: dict[str, Any] = {"limit": 500}
    if types:
        params["types"] = ",".join(types)
    while True:
        response = await http.get(
            f"/api/jobs/{job_id}/events", params={**params, "since_seq": seen.last}
        )
        if response.status_code >= 400:
            raise _error(response)
        page = response.json()["events"]
        for item in page:
            event = JobEvent.model_validate(item)
            if seen.add(event.seq):
                yield event
                if event.state is not None and event.state.terminal:
                    return
        if not page:
            status = await http.get(f"/api/jobs/{job_id}")
            if status.status_code < 400 and status.json().get("state") in (
                "succeeded",
                "failed",
                "canceled",
            ):
                return
            await asyncio.sleep(interval_s)
