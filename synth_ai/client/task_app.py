"""`TaskAppClient`: talks to any task app and jobs server, retrying only what is worth
retrying; `request_within` retries a request for a time budget instead."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, overload

import httpx

from synth_ai.task.answers import (
    IDEMPOTENCY_KEY,
    IDEMPOTENT,
    LOCKED_OUT,
    NOT_SENT,
    NOTHING_RAN,
    RETRYABLE,
    TaskAppClientError,
    answer_of,
    error_from_response,
    retry_after_seconds,
)
from synth_ai.task.contracts import RolloutRequest, RolloutResponse, TaskInfo, every_generation

from .job_stream import DEFAULT_RETRY_FOR_S, is_transient, stream_job

if TYPE_CHECKING:
    from synth_ai.job_events.models import JobEvent

logger = logging.getLogger("synth_ai.jobs.client")
"""Named as when `request_within` lived in jobs/client.py, so log filters keep working."""


class TaskAppClient:
    """Async client for the task-app contract.

    Sends the key as `X-API-Key`, `X-API-Keys` and `Authorization: Bearer`, so any generation of
    server accepts it. Retries with jittered exponential backoff (honouring `Retry-After`) only
    what cannot run twice: an idempotent request (GET...) after transport errors and `RETRYABLE`
    answers; any other (a rollout, a job) only when it was never sent (a connect error) or was
    answered that nothing ran (429, 503), never after a read timeout or a 504, which the
    server may have started; a request with an `Idempotency-Key` counts as idempotent. Other
    errors, and the 429 of an address locked out for wrong keys (`LOCKED_OUT`), are raised at
    once as `TaskAppClientError`.

    Speaks Modal's long-request protocol: a web request that runs past 150 s is answered
    `303 See Other` with a result URL on the same origin, which blocks up to 150 s more and may
    redirect again. The client follows those redirects with GET (never resending the request,
    which would start the work again) until the result comes or `timeout` seconds have passed
    since the request was sent. So to wait for a rollout longer than 150 s on Modal, give a
    `timeout` above that (it is also each request's own read timeout).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 8.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ENVIRONMENT_API_KEY")
        headers = (
            {"X-API-Key": key, "X-API-Keys": key, "Authorization": f"Bearer {key}"} if key else {}
        )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self) -> dict[str, Any]:
        return await self.request("GET", "/health")

    async def info(self) -> dict[str, Any]:
        return await self.request("GET", "/info")

    @overload
    async def task_info(self, seeds: None = None) -> dict[str, Any]: ...
    @overload
    async def task_info(self, seeds: int) -> TaskInfo: ...
    @overload
    async def task_info(self, seeds: Sequence[int]) -> list[TaskInfo]: ...

    async def task_info(
        self, seeds: int | Sequence[int] | None = None
    ) -> dict[str, Any] | TaskInfo | list[TaskInfo]:
        """No seeds: the taskset description. One int: its TaskInfo. A sequence: a list."""
        if seeds is None:
            return await self.request("GET", "/task_info")
        wanted = [seeds] if isinstance(seeds, int) else list(seeds)
        data = await self.request("GET", "/task_info", params=[("seed", s) for s in wanted])
        infos = [
            TaskInfo.model_validate(item) for item in (data if isinstance(data, list) else [data])
        ]
        return infos[0] if isinstance(seeds, int) else infos

    async def rollout(self, request: RolloutRequest | dict[str, Any]) -> RolloutResponse:
        body = (
            request.model_dump(mode="json", exclude_none=True)
            if isinstance(request, RolloutRequest)
            else request
        )
        answer = await self.request("POST", "/rollout", json=every_generation(body))
        return RolloutResponse.model_validate(answer)

    # --- jobs (DESIGN.md 5) -------------------------------------------------------------------

    async def create_job(
        self,
        kind: str = "custom",
        config: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {"kind": kind, "config": config or {}, "metadata": metadata or {}}
        return await self.request("POST", "/api/jobs", json=body)

    async def status(self, job_id: str) -> dict[str, Any]:
        """The job's snapshot: state, last_seq, timestamps, metadata."""
        return await self.request("GET", f"/api/jobs/{job_id}")

    async def events(
        self, job_id: str, since_seq: int = 0, limit: int = 200, types: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """One page of events after `since_seq`: `{"events": [...], "next_seq": N}`."""
        params: dict[str, Any] = {"since_seq": since_seq, "limit": limit}
        if types:
            params["types"] = ",".join(types)
        return await self.request("GET", f"/api/jobs/{job_id}/events", params=params)

    async def emit_events(self, job_id: str, events: Sequence[dict[str, Any]]) -> list[int]:
        """Post events for a job (a remote producer); answers their assigned seqs. The key,
        the same on each retry, has the server store them once if an answer is lost."""
        body, key = {"events": list(events)}, {IDEMPOTENCY_KEY: uuid.uuid4().hex}
        answer = await self.request("POST", f"/api/jobs/{job_id}/events", json=body, headers=key)
        return answer["seqs"]

    async def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Ask the jobs server to cancel; the job's stream then ends with `canceled`."""
        return await self.request("POST", f"/api/jobs/{job_id}/cancel")  # type: ignore[no-any-return]

    async def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        """The job's stored files: `[{name, size, sha256, url}]`."""
        return (await self.request("GET", f"/api/jobs/{job_id}/artifacts"))["artifacts"]

    async def download_artifact(self, job_id: str, name: str, destination: Path) -> int:
        """Stream one of the job's files to `destination`; answers the bytes written."""
        written = 0
        async with self._http.stream("GET", f"/api/jobs/{job_id}/artifacts/{name}") as response:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response)
            out = await asyncio.to_thread(open, destination, "wb")
            try:
                async for chunk in response.aiter_bytes():
                    await asyncio.to_thread(out.write, chunk)
                    written += len(chunk)
            finally:
                await asyncio.to_thread(out.close)
        return written

    async def upload_artifact(self, job_id: str, path: str | Path, **how: Any) -> dict[str, Any]:
        """Upload a local file as one of the job's artifacts (`kind`, `step`, `name` as for
        `RemoteEmitter.upload_artifact`); answers what the server stored."""
        from synth_ai.job_events.upload import upload_file

        return await upload_file(self._http, job_id, Path(path), **how)

    def stream_job(
        self,
        job_id: str,
        types: Sequence[str] | None = None,
        since_id: int | None = None,
        **options: Any,
    ) -> AsyncIterator[JobEvent]:
        """The job's events live, resuming across disconnects, until the stream ends."""
        return stream_job(self._http, job_id, types=types, since_id=since_id, **options)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request with the retry policy; answer the decoded JSON body."""
        started = time.monotonic()
        keyed = IDEMPOTENCY_KEY in httpx.Headers(kwargs.get("headers"))
        idempotent = keyed or method.upper() in IDEMPOTENT
        resent_after = RETRYABLE if idempotent else NOTHING_RAN
        for attempt in range(self.max_retries + 1):
            last_attempt = attempt == self.max_retries
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last_attempt or not (idempotent or isinstance(exc, NOT_SENT)):
                    raise TaskAppClientError(
                        None, "transport_error", f"{type(exc).__name__}: {exc}"
                    ) from exc
                await self.pause(self._backoff(attempt))
                continue
            if response.status_code == 303:  # accepted, still running: never send it again
                return answer_of(await self._follow(response, started))
            if response.status_code < 400:
                return answer_of(response)
            error = error_from_response(response)
            if response.status_code not in resent_after or last_attempt or error.code == LOCKED_OUT:
                raise error
            delay = retry_after_seconds(response.headers.get("retry-after"))
            await self.pause(delay if delay is not None else self._backoff(attempt))
        raise AssertionError("unreachable")

    async def _follow(self, response: httpx.Response, started: float) -> httpx.Response:
        """Wait for the result of a request Modal answered 303: GET each same-origin result
        URL until something else comes, or raise once `timeout` has passed since `started`.

        The result URL can be fetched again without starting the work again, so transport
        errors and `RETRYABLE` answers on it are retried here (within `max_retries` in a row); the
        request itself is never resent. A redirect to another origin is not followed: the
        key would go with it.
        """
        origin = response.request.url
        failures = 0
        while response.status_code == 303:
            location = response.headers.get("location")
            if not location:
                raise TaskAppClientError(303, "redirect_not_followed", "303 without a Location")
            url = response.request.url.join(location)
            if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
                raise TaskAppClientError(
                    303, "redirect_not_followed", f"redirect to another origin: {url.host}"
                )
            left = None if self.timeout is None else self.timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                raise TaskAppClientError(
                    303,
                    "deadline_exceeded",
                    f"no result after {self.timeout:g} s (the client's timeout); "
                    f"{origin.path} may still be running on the server",
                )
            try:
                answer = await self._http.request("GET", url, timeout=left)
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.max_retries:
                    raise TaskAppClientError(
                        None, "transport_error", f"{type(exc).__name__}: {exc}"
                    ) from exc
                await self.pause(self._backoff(failures - 1))
                continue
            retryable = answer.status_code in RETRYABLE and failures < self.max_retries
            if retryable and error_from_response(answer).code != LOCKED_OUT:
                failures += 1
                delay = retry_after_seconds(answer.headers.get("retry-after"))
                await self.pause(delay if delay is not None else self._backoff(failures - 1))
                continue
            failures = 0 if answer.status_code == 303 else failures
            response = answer
        return response

    async def pause(self, seconds: float) -> None:
        """Wait before a retry (a hook, so callers can observe or shorten backoff)."""
        await asyncio.sleep(seconds)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))


async def request_within(
    client: TaskAppClient,
    method: str,
    path: str,
    *,
    retry_for_s: float | None = DEFAULT_RETRY_FOR_S,
    backoff_s: float = 0.25,
    max_backoff_s: float = 8.0,
    **kwargs: Any,
) -> Any:
    """`client.request`, retried while the failure is transient and `retry_for_s` lasts.

    Refusals (401, 403, 404, 503 `missing_environment_api_key`, other 4xx) are raised at once
    as `TaskAppClientError`; so is the last transient error once the budget is spent. Give
    it a client made with `max_retries=0` so the two retry policies do not multiply.
    """
    loop = asyncio.get_running_loop()
    deadline = None if retry_for_s is None else loop.time() + retry_for_s
    given_timeout = kwargs.pop("timeout", None)
    attempt = 0
    while True:
        left = None if deadline is None else deadline - loop.time()
        connect = 30.0 if left is None else max(0.2, min(30.0, left))
        timeout = given_timeout or httpx.Timeout(30.0, connect=connect)
        try:
            return await client.request(method, path, timeout=timeout, **kwargs)
        except TaskAppClientError as exc:
            left = None if deadline is None else deadline - loop.time()
            if not is_transient(exc.status, exc.code) or (left is not None and left <= 0):
                raise
            attempt += 1
            if attempt == 2:
                logger.warning(
                    "%s %s%s: %s; retrying%s",
                    method,
                    client.base_url,
                    path,
                    exc,
                    "" if left is None else f" for up to {left:.3g} s more",
                )
            wait = random.uniform(0, min(max_backoff_s, backoff_s * 2**attempt))
            await asyncio.sleep(wait if left is None else min(wait, left))
