"""The jobs HTTP API (DESIGN.md 5): create, list, snapshot, cancel, events, stream, tokens.

`JobsRoutes` is mountable into any app: `protected` routes go behind the API-key middleware,
`public` ones (streams and artifact downloads) check a key or a stream token themselves, so
that a browser's `EventSource` can authenticate with a token in the query. Every route of a job
answers 404 to a tenant that does not own it.
"""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from synth_ai.batch_writer import WriterUnavailable
from synth_ai.task.auth import WWW_AUTHENTICATE, check_api_key, presented_keys
from synth_ai.task.errors import TaskAppError, invalid_request, validation_error
from synth_ai.task.json_body import json_body

from .artifacts import valid_name
from .bus import JobBus, Subscription, TooManySubscribers
from .log import JobFinished, JobNotFound
from .models import SSE_NAMES, EventIn, JobEvent, JobState
from .service import JobsService
from .sse import (
    KEEP_ALIVE,
    EventStreamResponse,
    control_frame,
    event_frame,
    retry_frame,
)
from .tenants import Principal, identify, principal_of, tenant_keys
from .tokens import TokenCheck, check_stream_token, issue_stream_token, token_tenant

STREAM_PATHS = (
    "/api/jobs/{job_id}/stream",
    "/api/rl/jobs/{job_id}/stream",
    "/rl/jobs/{job_id}/stream",
)
ARTIFACT_PATHS = (
    "/api/jobs/{job_id}/artifacts/{name}",
    "/rl/jobs/{job_id}/artifacts/{name}",
)
ARTIFACT_UPLOAD = re.compile(r"^/(api/|)(rl/)?jobs/[^/]+/artifacts/[^/]+$")
ARTIFACT_KIND = re.compile(r"[a-z0-9_]{1,32}")
MAX_EVENTS_PER_POST = 1000
MAX_SEQ = 2**63 - 1
MAX_JOB_ID_CHARS = 64
TYPE_FILTER = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
REPLAY_PAGE = 500
REPLAY_FRAMES_PER_CHUNK = 64
CHUNK_BYTES = 64 * 1024


class JobKind(Protocol):
    """A kind of job the server runs itself (a `custom` job is driven by its producer)."""

    def prepare(self, config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Validate a config: answers what to store (no secrets) and what to run with."""
        ...

    async def start(self, service: JobsService, job: dict[str, Any], runtime: Any) -> None: ...


class CreateJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="custom", max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


def _int_param(
    request: Request, name: str, default: int, minimum: int = 0, maximum: int = MAX_SEQ
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return _bounded_int(raw, ["query", name], minimum, maximum)


def _bounded_int(raw: str, loc: list[str], minimum: int, maximum: int) -> int:
    text = raw.strip()
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    if value is None or not minimum <= value <= maximum:
        raise invalid_request(
            f"{loc[-1]} must be an integer in [{minimum}, {maximum}].",
            loc=loc,
            msg="not an integer in range",
            type="int_parsing",
        )
    return value


def _float_param(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw[:40])
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN fails this too
        raise invalid_request(
            f"{name} must be a number of seconds in [{low:g}, {high:g}].",
            loc=["query", name],
            msg="not a number in range",
            type="float_parsing",
        )
    return value


def _names(request: Request) -> list[str] | None:
    """The `types` filter: SSE names (`metric`) or full dotted types (`eval.result`)."""
    raw = request.query_params.get("types")
    names = [part.strip() for part in (raw or "").split(",") if part.strip()]
    unknown = [n for n in names if n not in SSE_NAMES and not TYPE_FILTER.match(n)]
    if unknown or len(names) > 32:
        raise invalid_request(
            "types is a comma-separated list of event names or dotted types (at most 32).",
            loc=["query", "types"],
            msg=f"use {', '.join(SSE_NAMES)} or a dotted type",
            type="enum",
        )
    return names or None


def _artifact_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not valid_name(name):
        raise invalid_request(
            "Artifact names are plain file names.",
            loc=["path", "name"],
            msg="letters, digits, '.', '_' and '-' only; no '..'; at most 128",
            type="string_pattern_mismatch",
        )
    return name


def _job_not_found(job_id: str) -> TaskAppError:
    return TaskAppError(404, "job_not_found", f"No job {job_id[:80]!r}.")


class JobsRoutes:
    def __init__(self, service: JobsService, kinds: dict[str, JobKind] | None = None) -> None:
        self.service = service
        self.settings = service.settings
        self.kinds: dict[str, JobKind | None] = {"custom": None, **(kinds or {})}

    @property
    def protected(self) -> list[BaseRoute]:
        return [
            Route("/api/jobs", self.create, methods=["POST"]),
            Route("/api/jobs", self.list, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.get, methods=["GET"]),
            Route("/api/jobs/{job_id}/cancel", self.cancel, methods=["POST"]),
            Route("/api/jobs/{job_id}/events", self.events, methods=["GET"]),
            Route("/api/jobs/{job_id}/events", self.post_events, methods=["POST"]),
            Route("/api/rl/jobs/{job_id}/events", self.events, methods=["GET"]),
            Route("/api/rl/jobs/{job_id}/events", self.post_events, methods=["POST"]),
            Route("/api/jobs/{job_id}/stream-token", self.stream_token, methods=["POST"]),
            Route("/api/jobs/{job_id}/artifacts", self.list_artifacts, methods=["GET"]),
            *(Route(path, self.put_artifact, methods=["PUT"]) for path in ARTIFACT_PATHS),
        ]

    def body_limit_for(self, scope: Scope) -> int | None:
        """Artifact uploads may be larger than other bodies (SYNTH_JOBS_MAX_ARTIFACT_BYTES)."""
        if scope["method"] == "PUT" and ARTIFACT_UPLOAD.match(scope["path"]):
            return self.settings.max_artifact_bytes
        return None

    @property
    def public(self) -> list[BaseRoute]:
        return [
            *(Route(path, self.stream, methods=["GET"]) for path in STREAM_PATHS),
            *(Route(path, self.get_artifact, methods=["GET"]) for path in ARTIFACT_PATHS),
        ]

    async def _bus(self, request: Request, principal: Principal | None = None) -> JobBus:
        """The job's bus, if it exists and the caller may see it; else 404 (never 403, so a
        job id tells another tenant nothing)."""
        job_id = request.path_params["job_id"]
        bus = await self.service.bus(job_id) if len(job_id) <= MAX_JOB_ID_CHARS else None
        who = principal or principal_of(request.scope)
        if bus is None or not who.may_see(bus.tenant):
            raise _job_not_found(job_id)
        return bus

    async def _store(self, job_id: str, events: list[EventIn]) -> list[JobEvent]:
        """Store events, mapping the log's refusals onto the error envelope."""
        try:
            return await self.service.emit(job_id, events)
        except JobNotFound:
            raise _job_not_found(job_id) from None
        except JobFinished as exc:
            raise TaskAppError(
                409,
                "job_finished",
                f"The job is {exc.state.value}; a finished job's state is final.",
                state=exc.state.value,
            ) from None
        except WriterUnavailable:
            raise TaskAppError(
                503,
                "log_unavailable",
                "The event log is not keeping up; nothing was stored. Retry later.",
                headers={"Retry-After": "1"},
            ) from None
        except sqlite3.Error as exc:
            raise TaskAppError(
                503,
                "log_unavailable",
                f"The event log failed ({type(exc).__name__}); nothing was stored.",
                headers={"Retry-After": "1"},
            ) from None

    async def create(self, request: Request) -> Response:
        try:
            spec = CreateJob.model_validate(await json_body(request))
        except ValidationError as exc:
            raise validation_error(exc, "The job request is invalid.") from None
        if spec.kind not in self.kinds:
            raise invalid_request(
                f"Unknown job kind {spec.kind!r}.",
                loc=["body", "kind"],
                msg=f"use one of {sorted(self.kinds)}",
                type="enum",
            )
        kind = self.kinds[spec.kind]
        stored, runtime = spec.config, None
        if kind is not None:
            try:
                stored, runtime = kind.prepare(spec.config)
            except ValidationError as exc:
                raise validation_error(exc, f"The {spec.kind} job config is invalid.") from None
        tenant = principal_of(request.scope).tenant
        job = await self.service.create(spec.kind, stored, spec.metadata, tenant)
        if kind is not None:
            await kind.start(self.service, job, runtime)
        return JSONResponse(job, status_code=201)

    async def list(self, request: Request) -> Response:
        limit = _int_param(request, "limit", 50, minimum=1)
        tenant = principal_of(request.scope).tenant
        return JSONResponse({"jobs": await self.service.list(min(limit, 1000), tenant)})

    async def get(self, request: Request) -> Response:
        await self._bus(request)
        return JSONResponse(await self.service.snapshot(request.path_params["job_id"]))

    async def cancel(self, request: Request) -> Response:
        bus = await self._bus(request)
        canceled = EventIn(
            type="job.status",
            message="canceled by request",
            data={"state": JobState.CANCELED.value},
        )
        try:
            await self._store(bus.job_id, [canceled])
        except TaskAppError as exc:
            if exc.status != 409:
                raise  # 409: it had finished already; the snapshot says how
        return JSONResponse(await self.service.snapshot(bus.job_id))

    async def events(self, request: Request) -> Response:
        bus = await self._bus(request)
        after = _int_param(request, "since_seq", _int_param(request, "after", 0))
        limit = min(_int_param(request, "limit", 200, minimum=1), 1000)
        page = await self.service.events(bus.job_id, after, limit, _names(request))
        next_seq = page[-1].seq if page else after
        return JSONResponse(
            {"events": [event.model_dump(mode="json") for event in page], "next_seq": next_seq}
        )

    async def post_events(self, request: Request) -> Response:
        job_id = (await self._bus(request)).job_id
        body = await json_body(request)
        raw = body.get("events") if isinstance(body, dict) and "events" in body else [body]
        if not isinstance(raw, list) or not raw or len(raw) > MAX_EVENTS_PER_POST:
            raise invalid_request(
                f'Send one event or {{"events": [...]}} with 1 to {MAX_EVENTS_PER_POST} events.',
                loc=["body", "events"],
                msg="bad event list",
            )
        try:
            events = [EventIn.model_validate(item) for item in raw]
        except ValidationError as exc:
            raise validation_error(exc, "An event is invalid.") from None
        stored = await self._store(job_id, events)
        return JSONResponse({"seqs": [event.seq for event in stored]}, status_code=201)

    async def stream_token(self, request: Request) -> Response:
        bus = await self._bus(request)
        token, expires_at = issue_stream_token(
            self.service.token_secret,
            bus.job_id,
            self.settings.token_ttl_s,
            principal_of(request.scope).tenant,
        )
        return JSONResponse({"token": token, "expires_at": expires_at})

    async def list_artifacts(self, request: Request) -> Response:
        bus = await self._bus(request)
        artifacts = await asyncio.to_thread(self.service.artifacts.list, bus.job_id)
        return JSONResponse({"artifacts": artifacts})

    async def put_artifact(self, request: Request) -> Response:
        """Store the raw body as a job's file, then announce it as an `artifact.<kind>` event."""
        bus = await self._bus(request)
        name = _artifact_name(request)
        kind = request.query_params.get("kind") or "file"
        if not ARTIFACT_KIND.fullmatch(kind):
            raise invalid_request(
                "kind is a short lowercase word (checkpoint, results, ...).",
                loc=["query", "kind"],
                msg="letters, digits and '_' only; at most 32",
                type="string_pattern_mismatch",
            )
        step = _int_param(request, "step", -1)
        stored = await self.service.artifacts.save(bus.job_id, name, request.stream())
        announced = {"kind": kind, "step": None if step < 0 else step, **stored}
        await self._store(bus.job_id, [EventIn(type=f"artifact.{kind}", data=announced)])
        return JSONResponse(stored, status_code=201)

    async def get_artifact(self, request: Request) -> Response:
        bus = await self._bus(request, self._reader(request))
        name = _artifact_name(request)
        path = self.service.artifacts.path(bus.job_id, name)
        if not await asyncio.to_thread(path.is_file):
            raise TaskAppError(404, "artifact_not_found", f"The job has no artifact {name!r}.")
        return FileResponse(path, filename=name)

    # --- the stream ------------------------------------------------------------------------

    def _reader(self, request: Request) -> Principal:
        """Who reads a stream or an artifact: a stream token for this job (what a browser can
        send), else a key, checked here because these routes are public to the middleware."""
        token = request.query_params.get("token")
        if token and not presented_keys(request.headers):
            check = check_stream_token(
                self.service.token_secret, token, request.path_params["job_id"]
            )
            if check is TokenCheck.WRONG_JOB:
                raise TaskAppError(403, "forbidden", "This stream token is for another job.")
            if check is not TokenCheck.OK:
                raise TaskAppError(401, "unauthorised", f"The stream token is {check.value}.")
            return Principal(token_tenant(token))
        principal = identify(request.headers)
        if principal is not None:
            return principal
        refusal = check_api_key(request.headers, request.method, request.url.path)
        if refusal is not None and refusal.status_code == 503 and not tenant_keys():
            raise TaskAppError(
                503,
                "missing_environment_api_key",
                "The server has no API key configured; set ENVIRONMENT_API_KEY on the server.",
            )
        raise TaskAppError(
            401,
            "unauthorised",
            "A valid API key (or a stream token for this job) is required.",
            headers=WWW_AUTHENTICATE,
        )

    async def stream(self, request: Request) -> Response:
        principal = self._reader(request)
        bus = await self._bus(request, principal)
        names = _names(request)
        last_event_id = request.headers.get("last-event-id", "").strip()
        since = (
            _bounded_int(last_event_id, ["header", "last-event-id"], 0, MAX_SEQ)
            if last_event_id
            else _int_param(request, "since_id", 0)
        )
        heartbeat = _float_param(request, "heartbeat", self.settings.heartbeat_s, 0.05, 3600)
        if bus.state.terminal and since >= bus.last_seq:
            # nothing more will ever come: 204 is how SSE tells a browser to stop reconnecting
            return Response(status_code=204)
        if self.service.subscriber_count >= self.settings.max_clients:
            raise TaskAppError(
                429,
                "too_many_streams",
                "This server has too many open streams.",
                headers={"Retry-After": "5"},
            )
        tenant = principal.tenant
        if tenant is not None and self.service.streams_of(tenant) >= (
            self.settings.max_clients_per_tenant
        ):
            raise TaskAppError(
                429,
                "too_many_streams",
                "This tenant has as many open streams as it allows.",
                headers={"Retry-After": "5"},
            )
        try:
            subscription = bus.subscribe(names, request.query_params.get("split") or None)
        except TooManySubscribers:
            raise TaskAppError(
                429,
                "too_many_streams",
                "This job has as many streams as it allows.",
                headers={"Retry-After": "5"},
            ) from None
        chunks = self._frames(bus, subscription, since, names, heartbeat)
        return EventStreamResponse(chunks, send_timeout_s=self.settings.send_timeout_s)  # type: ignore[return-value]

    async def _frames(
        self,
        bus: JobBus,
        subscription: Subscription,
        since: int,
        names: list[str] | None,
        heartbeat: float,
    ) -> AsyncIterator[bytes]:
        """Subscribe first, then replay from the ring or the log, then go live; no gap."""
        loop = asyncio.get_running_loop()
        closes_at: float | None = None
        try:
            yield retry_frame(self.settings.retry_ms)
            watermark = since
            replay = bus.ring_after(since)
            cursor = since
            while replay is None:  # the ring does not reach back: page through the log
                try:
                    async with asyncio.timeout(self.settings.replay_timeout_s):
                        page = await self.service.events(bus.job_id, cursor, REPLAY_PAGE, names)
                except (TimeoutError, sqlite3.Error) as exc:
                    # never jump ahead: say so and end, so the client resumes from its own
                    # cursor once the log answers again
                    yield control_frame(
                        "reset",
                        {
                            "state": bus.state.value,
                            "dropped_events": False,
                            "last_seq": bus.last_seq,
                            "message": f"the event log is not answering ({type(exc).__name__});"
                            " resume from your last id",
                        },
                    )
                    return
                wanted = [event_frame(e) for e in page if subscription.wants(e)]
                for start in range(0, len(wanted), REPLAY_FRAMES_PER_CHUNK):
                    yield b"".join(wanted[start : start + REPLAY_FRAMES_PER_CHUNK])
                if page:
                    watermark = cursor = page[-1].seq
                if len(page) < REPLAY_PAGE:
                    replay = []
            for event in replay:
                if subscription.wants(event):
                    yield event_frame(event)
                watermark = event.seq
            if bus.state.terminal:
                closes_at = loop.time() + self.settings.end_grace_s
            while True:
                timeout = (
                    heartbeat if closes_at is None else min(heartbeat, closes_at - loop.time())
                )
                if timeout <= 0 or not await subscription.wait(timeout):
                    if closes_at is not None and loop.time() >= closes_at:
                        yield control_frame(
                            "end", {"state": bus.state.value, "last_seq": bus.last_seq}
                        )
                        return
                    yield KEEP_ALIVE
                    if names and "heartbeat" in names:  # a frame a browser's handler can see
                        yield control_frame("heartbeat", {"alive": True, "ts": time.time()})
                    continue
                # what is buffered goes out in few sends, each at most CHUNK_BYTES, so a client
                # that stops reading pins at most about one chunk in the transport
                batch: list[bytes] = []
                size = 0
                for event in subscription.drain():
                    if event.seq <= watermark:
                        continue  # already replayed
                    frame = event_frame(event)
                    if batch and size + len(frame) > CHUNK_BYTES:
                        yield b"".join(batch)
                        batch, size = [], 0
                    batch.append(frame)
                    size += len(frame)
                    if event.state is not None and event.state.terminal and closes_at is None:
                        closes_at = loop.time() + self.settings.end_grace_s
                if batch:
                    yield b"".join(batch)
                if subscription.lagged:
                    yield control_frame(
                        "lagged",
                        {
                            "last_seq": bus.last_seq,
                            "message": "stream fell behind; resume from your last id",
                        },
                    )
                    return
        finally:
            bus.unsubscribe(subscription)
