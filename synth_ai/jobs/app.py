"""`create_jobs_app()`: a standalone jobs server with the same auth and errors as task apps."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from synth_ai.storage import DatabaseURL
from synth_ai.task.application import standard_middleware
from synth_ai.task.errors import EXCEPTION_HANDLERS

from .dashboard import Dashboard
from .openapi import build_openapi
from .routes import JobKind, JobsRoutes
from .service import DEFAULT_JOBS_DB, JobsService
from .settings import StreamSettings
from .sse import TRANSPORT_SEND
from .tenants import TenantAuthMiddleware, tenant_keys


class JobsApp(Starlette):
    """The jobs server's app: keeps the server's `send` in each request's scope for the event
    streams (`TRANSPORT_SEND`).

    Every layer this app puts around a route (error handlers, access log, CORS) wraps `send`
    only to see the response start; a stream with a thousand subscribers sends a body message
    per batch to each, so its bodies skip those wrappers. Middleware added later might change
    bodies (compression): then the streams send through the stack like any response.
    """

    plain_sends = True

    def add_middleware(self, *args: Any, **kwargs: Any) -> None:
        self.plain_sends = False
        super().add_middleware(*args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.plain_sends and scope["type"] == "http":
            scope[TRANSPORT_SEND] = send
        await super().__call__(scope, receive, send)


def create_jobs_app(
    db: str | os.PathLike[str] | DatabaseURL = DEFAULT_JOBS_DB,
    *,
    artifacts_dir: str | os.PathLike[str] | None = None,
    settings: StreamSettings | None = None,
    cors_origins: Sequence[str] = (),
    require_api_key: bool = True,
    kinds: dict[str, JobKind] | None = None,
) -> Starlette:
    """The jobs API and streams over an event log at `db` (a SQLite path or URL, or a
    `postgresql://` URL shared by replicas); `app.state.jobs` is the service.

    `artifacts_dir`: where job files go (default beside a SQLite file, else
    `traces/jobs.artifacts`). `kinds` adds job kinds the server runs itself
    (`synth_ai.eval.EvalJobKind()` for `eval`). The dashboard is served at `/ui/`;
    `app.state.signin` issues its sign-in links.
    """
    tenant_keys()  # a malformed SYNTH_JOBS_TENANT_KEYS stops the server now, naming it
    service = JobsService(db, settings, artifacts_dir)
    routes = JobsRoutes(service, kinds)
    dashboard = Dashboard(service)

    async def root(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "service": "jobs", "log_write_errors": service.log.write_errors}
        )

    document: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        if not document:
            document.update(build_openapi(sorted(routes.kinds)))
        return JSONResponse(document)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.close()

    public = [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *routes.public,
        *dashboard.public,
    ]
    app = JobsApp(
        routes=[*public, *routes.protected, *dashboard.protected],
        middleware=standard_middleware(
            max_request_bytes=4 * 1024 * 1024,
            cors_origins=cors_origins,
            require_api_key=require_api_key,
            auth=TenantAuthMiddleware,
            body_limit_for=routes.body_limit_for,
            public_routes=public,
        ),
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    app.state.jobs = service
    app.state.signin = dashboard.signin
    return app
