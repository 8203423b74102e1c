"""What `create_task_app` adds for an app written for 0.2.24 (COMPATIBILITY.md).

Each piece adapts 0.2.24's way of saying something to this project's: a `(request,
fastapi_request)` executor runs as an executor of this framework, FastAPI routers are served
behind the key, `app_state` lands on `app.state`, and an `HTTPException` becomes the envelope.
FastAPI is imported only for an app that brings routers (it is the author's dependency).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .contracts import RubricInfo
from .errors import EXCEPTION_HANDLERS, error_response, from_http_exception

if TYPE_CHECKING:
    from .config import RolloutExecutor, TaskAppConfig
    from .contracts import RolloutRequest
    from .rollout import RolloutContext

logger = logging.getLogger("synth_ai.task.published")

HTTP_REQUEST_NAMES = frozenset({"fastapi_request", "http_request"})
"""Second-parameter names that mean "give me the HTTP request", as 0.2.24's executors took."""

_rollout_scope: ContextVar[tuple[Scope, list[bytes]] | None] = ContextVar(
    "synth_ai_rollout_scope", default=None
)


def takes_http_request(executor: Callable[..., Any]) -> bool:
    """Whether an executor is 0.2.24's `(request, fastapi_request)`: its second parameter is
    annotated as a (Starlette or FastAPI) `Request`, or named `fastapi_request`/`http_request`.
    Any other executor gets this framework's `RolloutContext`."""
    if getattr(executor, "takes_http_request", False):
        return False  # already adapted
    try:
        params = list(inspect.signature(executor).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(params) < 2:
        return False
    second = params[1]
    annotation = second.annotation
    if isinstance(annotation, str):
        name = annotation.rsplit(".", 1)[-1]
        return name == "Request" or second.name in HTTP_REQUEST_NAMES
    if isinstance(annotation, type) and issubclass(annotation, Request):
        return True
    return second.name in HTTP_REQUEST_NAMES


class RolloutScope:
    """Wraps the `/rollout` endpoint so an adapted executor can see its request: the scope,
    and the body as the endpoint read it (kept for this request only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        token = _rollout_scope.set((scope, chunks))
        try:
            await self.app(scope, recording, send)
        finally:
            _rollout_scope.reset(token)


def http_request() -> Request:
    """The rollout's HTTP request as an executor sees it: its body can be read again."""
    current = _rollout_scope.get()
    if current is None:
        return Request({"type": "http", "headers": []})
    scope, chunks = current
    body = b"".join(chunks)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, replay)


def http_request_executor(executor: Callable[..., Any]) -> RolloutExecutor:
    """A 0.2.24 executor as one of this framework's: it is given the rollout's HTTP request
    (its `app.state` holds `app_state`; its body reads as sent), a sync one runs in a worker
    thread, and an `HTTPException` it raises is answered in the envelope with its status."""
    is_async = inspect.iscoroutinefunction(executor)

    @functools.wraps(executor)
    async def execute(request: RolloutRequest, context: RolloutContext) -> Any:
        fastapi_request = http_request()
        try:
            if is_async:
                return await executor(request, fastapi_request)
            result = await run_in_threadpool(executor, request, fastapi_request)
            return await result if inspect.isawaitable(result) else result
        except HTTPException as exc:
            raise from_http_exception(exc) from None

    execute.takes_http_request = True  # type: ignore[attr-defined]
    return execute


async def call_hook(hook: Callable[..., Any], app: Any) -> None:
    """A startup/shutdown hook: given the app when it takes an argument (as 0.2.24 did)."""
    try:
        wants_app = bool(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        wants_app = False
    args = (app,) if wants_app else ()
    if inspect.iscoroutinefunction(hook):
        await hook(*args)
        return
    result = await run_in_threadpool(hook, *args)
    if inspect.isawaitable(result):
        await result


def is_published(config: TaskAppConfig) -> bool:
    """Whether a config says anything only 0.2.24 said; such an app also gets `POST /done`."""
    return bool(
        takes_http_request(config.rollout)
        or getattr(config.rollout, "takes_http_request", False)
        or config.routers
        or config.proxy
        or config.app_state
        or config.expose_debug_env
        or config.dataset_registry is not None
        or config.startup_hooks
        or config.shutdown_hooks
        or not isinstance(config.rubrics, RubricInfo | None)  # a RubricBundle
    )


def done_route(app_id: str) -> Route:
    """0.2.24's `POST /done`: says the app is reachable (behind the key)."""

    async def done(request: Request) -> Response:
        return JSONResponse({"ok": True, "service": app_id})

    return Route("/done", done, methods=["POST"])


def debug_env_route() -> Route:
    """0.2.24's `GET /debug/env` (behind the key): which keys are set, never any part of one
    (0.2.24 answered the first six characters of the vendor keys)."""

    async def debug_env(request: Request) -> Response:
        def has(name: str) -> bool:
            return bool(os.environ.get(name, "").strip())

        return JSONResponse(
            {
                "has_ENVIRONMENT_API_KEY": has("ENVIRONMENT_API_KEY"),
                "has_OPENAI_API_KEY": has("OPENAI_API_KEY"),
                "has_GROQ_API_KEY": has("GROQ_API_KEY"),
            }
        )

    return Route("/debug/env", debug_env, methods=["GET"])


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, in the envelope; the offending input is not echoed."""
    errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
    listed = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]
    return error_response(422, "invalid_request", "The request is invalid.", errors=listed)


class RouterFallback:
    """What the task app's router does with a request none of its routes match: HTTP goes to
    one FastAPI app holding the author's routers (so their dependencies and validation work as
    in FastAPI), which shares the task app's `state` and error envelope and answers a 404 in
    it. Requests reach it through the task app's edge, so behind its key."""

    def __init__(self, routers: Sequence[Any], state: State, not_found: ASGIApp) -> None:
        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from fastapi.routing import APIRouter

        handlers: dict[Any, Any] = {
            **EXCEPTION_HANDLERS,
            RequestValidationError: _validation_error,
        }
        self.authors = FastAPI(
            openapi_url=None, docs_url=None, redoc_url=None, exception_handlers=handlers
        )
        self.authors.state = state
        for router in routers:
            if not isinstance(router, APIRouter):  # a FastAPI app given as a router
                router = getattr(router, "router", router)
            self.authors.include_router(router)
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.authors if scope["type"] == "http" else self.not_found
        await app(scope, receive, send)


__all__ = [
    "RolloutScope",
    "RouterFallback",
    "call_hook",
    "debug_env_route",
    "done_route",
    "http_request_executor",
    "is_published",
    "takes_http_request",
]
