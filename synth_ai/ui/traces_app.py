"""`create_traces_app(db)`: the trace viewer, pages and a read-only API over a trace store.

The list of sessions (filtered by reward, model, and an optimization's job and candidate), one
session as a transcript, and the SFT JSONL of the reward and model filter (what `synth-ai traces
export-sft` writes). Signing in works as on
the jobs dashboard (a printed single-use link, or a key typed into the page, traded for a
session cookie); the viewer runs as one process, so its signing secret, spent links and
sessions live in memory (at most `MAX_MEMORY_SESSIONS` sessions, the oldest ended first) and a
restart ends every session and prints a new link. Only the operator's keys read traces.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from synth_ai.jobs.params import int_param
from synth_ai.jobs.tenants import (
    Principal,
    TenantAuthMiddleware,
    identify,
    keys_of,
    principal_of,
)
from synth_ai.storage import DatabaseURL
from synth_ai.task.application import standard_middleware
from synth_ai.task.errors import EXCEPTION_HANDLERS, TaskAppError, invalid_request
from synth_ai.tracing_v3 import TraceReader, write_sft_jsonl

from .pages import page_routes
from .sessions import MemorySessions
from .signin import MemorySpend, SignIn
from .signin_routes import SignInRoutes
from .trace_summaries import model_names, optimizer_patterns, session_rows
from .transcript import transcript

MAX_FILTER_CHARS = 256
OPTIMIZER_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


def operator_only(headers: Headers) -> Principal | None:
    """The operator, when the key is one of theirs; tenants have no traces here."""
    principal = identify(headers)
    return principal if principal is not None and principal.is_operator else None


def _filters(request: Request) -> tuple[float | None, str | None]:
    """`min_reward` (a finite number) and `model` from the query, refused with a 422."""
    raw, model = request.query_params.get("min_reward"), request.query_params.get("model")
    min_reward = None
    if raw:
        try:
            min_reward = float(raw[:40])
        except ValueError:
            min_reward = math.nan
        if not math.isfinite(min_reward):
            raise invalid_request(
                "min_reward must be a finite number.",
                loc=["query", "min_reward"],
                msg="not a number",
                type="float_parsing",
            )
    if model is not None and len(model) > MAX_FILTER_CHARS:
        raise invalid_request(
            "model is at most 256 characters.", loc=["query", "model"], msg="too long"
        )
    return min_reward, model or None


def _optimizer_filter(request: Request) -> list[str]:
    """`job` and `candidate` from the query (ids: letters, digits, `_`), refused with a 422."""
    values = {}
    for name in ("job", "candidate"):
        value = request.query_params.get(name) or None
        if value is not None and not OPTIMIZER_ID.fullmatch(value):
            raise invalid_request(
                f"{name} is an id: 1 to 64 letters, digits or underscores.",
                loc=["query", name],
                msg="not an id",
            )
        values[name] = value
    return optimizer_patterns(values["job"], values["candidate"])


class TracesAPI:
    def __init__(self, reader: TraceReader) -> None:
        self.reader = reader

    @property
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/traces/sessions", self.sessions, methods=["GET"]),
            Route("/api/traces/sessions/{session_id}", self.session, methods=["GET"]),
            Route("/api/traces/models", self.models, methods=["GET"]),
            Route("/api/traces/export.jsonl", self.export, methods=["GET"]),
        ]

    @staticmethod
    def _operator(request: Request) -> None:
        if not principal_of(request.scope).is_operator:
            raise TaskAppError(403, "forbidden", "Traces are read with the operator's key.")

    async def sessions(self, request: Request) -> Response:
        self._operator(request)
        min_reward, model = _filters(request)
        rows = await asyncio.to_thread(
            session_rows,
            self.reader,
            limit=int_param(request, "limit", 50, minimum=1, maximum=500),
            offset=int_param(request, "offset", 0, maximum=10_000_000),
            min_reward=min_reward,
            model=model,
            session_like=_optimizer_filter(request),
        )
        return JSONResponse({"sessions": rows})

    async def session(self, request: Request) -> Response:
        self._operator(request)
        session_id = request.path_params["session_id"]
        trace = await asyncio.to_thread(self.reader.load_session, session_id)
        if trace is None:
            raise TaskAppError(404, "session_not_found", f"No session {session_id[:80]!r}.")
        return JSONResponse(transcript(trace))

    async def models(self, request: Request) -> Response:
        self._operator(request)
        return JSONResponse({"models": await asyncio.to_thread(model_names, self.reader)})

    async def export(self, request: Request) -> Response:
        """The SFT JSONL of the sessions the filter selects, written to a temporary file (the
        writer streams session by session) and removed once sent."""
        self._operator(request)
        min_reward, model = _filters(request)
        handle, path = tempfile.mkstemp(prefix="synth-sft-", suffix=".jsonl")
        os.close(handle)
        try:
            await asyncio.to_thread(
                write_sft_jsonl,
                self.reader.iter_sessions(min_reward=min_reward, model=model),
                path,
                min_reward=min_reward,
                model=model,
            )
        except BaseException:
            os.unlink(path)
            raise
        return FileResponse(
            path,
            media_type="application/jsonl",
            filename="sft_examples.jsonl",
            background=BackgroundTask(os.unlink, path),
        )


def create_traces_app(
    db: str | os.PathLike[str] | DatabaseURL, *, require_api_key: bool = True
) -> Starlette:
    """The viewer over the store at `db` (a SQLite path or URL, or `postgresql://`);
    `app.state.signin` issues its sign-in links."""
    reader = TraceReader(db)
    signin = SignIn(
        secrets.token_bytes(32), MemorySpend(), MemorySessions(), keys_of, name="traces"
    )
    accounts = SignInRoutes(signin, operator_only, principal_of)

    async def to_viewer(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(reader.close)

    public = [
        Route("/", to_viewer, methods=["GET", "HEAD"]),
        *page_routes({"": "traces.html", "session.html": "session.html"}),
        *accounts.public,
    ]
    app = Starlette(
        routes=[*public, *TracesAPI(reader).routes, *accounts.protected],
        middleware=standard_middleware(
            max_request_bytes=64 * 1024,
            cors_origins=(),
            require_api_key=require_api_key,
            auth=TenantAuthMiddleware,
            public_routes=public,
        ),
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    app.state.signin = signin
    return app
