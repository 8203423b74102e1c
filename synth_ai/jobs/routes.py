"""The jobs HTTP API (DESIGN.md 5): create, list, snapshot, cancel, events, stream, tokens.

`JobsRoutes` is mountable into any app: `protected` routes go behind the API-key middleware,
`public` ones (streams and artifact downloads) check a key or a stream token themselves, so
that a browser's `EventSource` can authenticate with a token in the query. Every route of a job
answers 404 to a tenant that does not own it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from synth_ai.batch_writer import WriterUnavailable
from synth_ai.task.errors import TaskAppError, invalid_request, validation_error
from synth_ai.task.json_body import json_body

from .artifact_index import ArtifactRefused
from .artifacts import JOB_ID
from .bus import JobBus, TooManySubscribers
from .callers import reader, still_allowed, writer
from .frames import stream_frames
from .log import EventNotEncodable, JobFinished, JobNotFound, KeyReused, LogFailed
from .models import EventIn, JobEvent, JobState
from .params import (
    MAX_SEQ,
    artifact_name,
    bounded_int,
    event_names,
    float_param,
    int_param,
    job_not_found,
)
from .service import JobsService
from .sse import (
    EventStreamResponse,
)
from .tenants import Principal, principal_of, stream_grant
from .tokens import issue_stream_token

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
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


class JobKind(Protocol):
    """A kind of job the server runs itself (a `custom` job is driven by its producer)."""

    def prepare(self, config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Validate a config: answers what to store (no secrets) and what to run with."""
        ...

    async def check(self, service: JobsService, runtime: Any, tenant: str | None) -> None:
        """What must hold before `tenant` may make the job (the app it will call answers, a
        job it names is its own): raise `TaskAppError` to refuse the request, so a job that
        cannot start is never stored."""
        ...

    async def start(self, service: JobsService, job: dict[str, Any], runtime: Any) -> None: ...


class CreateJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="custom", max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


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
        job id tells another tenant nothing).

        A tenant's own job that is in memory answers at once; any other id, another tenant's
        or none at all, takes the same one query (`owns`), so neither the answer nor the work
        behind it says which it was."""
        job_id = request.path_params["job_id"]
        who = principal or principal_of(request.scope)
        if not JOB_ID.fullmatch(job_id):
            raise job_not_found(job_id)
        if not who.is_operator:
            hot = self.service.live_bus(job_id)
            if (hot is None or hot.tenant != who.tenant) and not await asyncio.to_thread(
                self.service.log.owns, job_id, who.tenant
            ):
                raise job_not_found(job_id)
        bus = await self.service.bus(job_id)
        if bus is None or not who.may_see(bus.tenant):
            raise job_not_found(job_id)
        return bus

    async def _store(
        self, job_id: str, events: list[EventIn], key: str | None = None
    ) -> list[JobEvent]:
        """Store events, mapping the log's refusals onto the error envelope."""
        try:
            return await self.service.emit(job_id, events, key)
        except EventNotEncodable as exc:
            raise invalid_request(
                "An event cannot be stored as JSON.", loc=["body", "events"], msg=str(exc)[:200]
            ) from None
        except KeyReused:
            raise TaskAppError(
                409,
                "idempotency_key_reused",
                "This Idempotency-Key already stored other events of this job.",
            ) from None
        except JobNotFound:
            raise job_not_found(job_id) from None
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
        except LogFailed as exc:
            raise TaskAppError(
                503,
                "log_unavailable",
                f"The event log failed ({str(exc).partition(':')[0]}); nothing was stored.",
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
        if kind is not None:
            await kind.check(self.service, runtime, tenant)
        job = await self.service.create(
            spec.kind, stored, spec.metadata, tenant, run_here=kind is not None
        )
        if kind is not None:
            await kind.start(self.service, job, runtime)
        return JSONResponse(job, status_code=201)

    async def list(self, request: Request) -> Response:
        limit = int_param(request, "limit", 50, minimum=1)
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
        after = int_param(request, "since_seq", int_param(request, "after", 0))
        limit = min(int_param(request, "limit", 200, minimum=1), 1000)
        page = await self.service.events(bus.job_id, after, limit, event_names(request))
        next_seq = page[-1].seq if page else after
        return JSONResponse(
            {"events": [event.model_dump(mode="json") for event in page], "next_seq": next_seq}
        )

    async def post_events(self, request: Request) -> Response:
        """Store a producer's events. With an `Idempotency-Key` header, a post is stored once
        per job: a retry with the same key and events is answered the first seqs."""
        job_id = (await self._bus(request)).job_id
        key = request.headers.get("idempotency-key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise invalid_request(
                "Idempotency-Key is 1 to 255 printable ASCII characters.",
                loc=["header", "idempotency-key"],
                msg="not a valid key",
            )
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
        stored = await self._store(job_id, events, key)
        return JSONResponse({"seqs": [event.seq for event in stored]}, status_code=201)

    async def stream_token(self, request: Request) -> Response:
        bus = await self._bus(request)
        token, expires_at = issue_stream_token(
            self.service.token_secret,
            bus.job_id,
            self.settings.token_ttl_s,
            principal_of(request.scope).tenant,
            stream_grant(request.scope),
        )
        return JSONResponse({"token": token, "expires_at": expires_at})

    async def list_artifacts(self, request: Request) -> Response:
        bus = await self._bus(request)
        artifacts = await asyncio.to_thread(self.service.artifacts.list, bus.job_id)
        return JSONResponse({"artifacts": artifacts})

    async def put_artifact(self, request: Request) -> Response:
        """Store the raw body as a job's file, then announce it as an `artifact.<kind>` event.

        Only the job's owner or the operator may: anyone else gets the 404 of a missing job,
        before a byte is read. A finished job still takes its owner's files (results and
        reports often come last)."""
        bus = await self._bus(request, writer(request))
        name = artifact_name(request)
        kind = request.query_params.get("kind") or "file"
        if not ARTIFACT_KIND.fullmatch(kind):
            raise invalid_request(
                "kind is a short lowercase word (checkpoint, results, ...).",
                loc=["query", "kind"],
                msg="letters, digits and '_' only; at most 32",
                type="string_pattern_mismatch",
            )
        step = int_param(request, "step", -1)
        try:
            stored = await self.service.artifacts.save(
                bus.job_id, name, bus.tenant, request.stream()
            )
        except ArtifactRefused as exc:
            raise TaskAppError(exc.status, exc.code, exc.message) from None
        announced = {"kind": kind, "step": None if step < 0 else step, **stored}
        await self._store(bus.job_id, [EventIn(type=f"artifact.{kind}", data=announced)])
        return JSONResponse(stored, status_code=201)

    async def get_artifact(self, request: Request) -> Response:
        bus = await self._bus(request, await reader(request, self.service.token_secret))
        name = artifact_name(request)
        path = self.service.artifacts.path(bus.job_id, name)
        if not await asyncio.to_thread(path.is_file):
            raise TaskAppError(404, "artifact_not_found", f"The job has no artifact {name!r}.")
        # a download is only ever saved: never sniffed, rendered or run as this origin's page
        # or script (names are plain, so the quoted filename needs no escaping)
        return FileResponse(
            path, filename=name, media_type="application/octet-stream", headers=DOWNLOAD_HEADERS
        )

    # --- the stream ------------------------------------------------------------------------

    async def stream(self, request: Request) -> Response:
        principal = await reader(request, self.service.token_secret)
        bus = await self._bus(request, principal)
        names = event_names(request)
        last_event_id = request.headers.get("last-event-id", "").strip()
        since = (
            bounded_int(last_event_id, ["header", "last-event-id"], 0, MAX_SEQ)
            if last_event_id
            else int_param(request, "since_id", 0)
        )
        heartbeat = float_param(request, "heartbeat", self.settings.heartbeat_s, 0.05, 3600)
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
        chunks = stream_frames(
            self.service,
            bus,
            subscription,
            since,
            names,
            heartbeat,
            still_allowed(request, principal),
        )
        return EventStreamResponse(chunks, send_timeout_s=self.settings.send_timeout_s)  # type: ignore[return-value]
