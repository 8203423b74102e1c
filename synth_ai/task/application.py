"""`create_task_app`: the Starlette app with every standard route, auth, limits and errors."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Scope

from .auth import AuthMiddleware, configured_keys, expected_prefix
from .config import TaskAppConfig
from .contracts import CONTRACT_VERSION, INT64_MAX, INT64_MIN, RubricInfo, TaskInfo
from .edge import EdgeMiddleware
from .errors import EXCEPTION_HANDLERS, invalid_request
from .openapi import build_openapi
from .published import (
    RolloutScope,
    RouterFallback,
    call_hook,
    debug_env_route,
    done_route,
    http_request_executor,
    is_published,
    takes_http_request,
)
from .rollout import RolloutRunner

_INTEGER = re.compile(r"[+-]?[0-9]+")


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an async callable; run a sync one in a worker thread so the loop stays free."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await run_in_threadpool(fn, *args)
    return await result if inspect.isawaitable(result) else result


def parse_seed(text: str, name: str) -> int:
    """One seed: a 64-bit integer, like `env.seed`. A 10,000-digit one is refused unparsed."""
    seed: int | None = None
    if len(text) <= 20:  # int64 needs at most 19 digits and a sign
        with contextlib.suppress(ValueError):
            seed = int(text)
    if seed is None and not _INTEGER.fullmatch(text):
        raise invalid_request(
            f"Seeds are integers; {name}={text[:40]!r} is not one.",
            loc=["query", name],
            msg="not an integer",
            type="int_parsing",
        )
    if seed is None or not INT64_MIN <= seed <= INT64_MAX:
        raise invalid_request(
            f"Seeds are 64-bit integers; {name}={text[:40]!r} is out of range.",
            loc=["query", name],
            msg="outside the 64-bit integer range",
            type="int_range",
        )
    return seed


def parse_seeds(request: Request, limit: int) -> list[int]:
    """Seeds from repeatable `seed` and `seeds` query parameters (each may be comma-separated)."""
    seeds: list[int] = []
    for name in ("seed", "seeds"):
        for raw in request.query_params.getlist(name):
            seeds.extend(parse_seed(part.strip(), name) for part in raw.split(","))
    if len(seeds) > limit:
        raise invalid_request(
            f"At most {limit} seeds per request; got {len(seeds)}.",
            loc=["query", "seed"],
            msg="too many seeds",
            type="too_long",
        )
    return seeds


class TaskAppRoutes:
    """The endpoints of the standard routes, bound to one config."""

    def __init__(self, config: TaskAppConfig) -> None:
        self.config = config
        self.runner = RolloutRunner(config)
        self._openapi: dict[str, Any] | None = None

    async def root(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": self.config.app_id})

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = build_openapi(self.config)
        return JSONResponse(self._openapi)

    async def health(self, request: Request) -> Response:
        limiter = self.runner.limiter
        return JSONResponse(
            {
                "healthy": True,
                "service": self.config.app_id,
                "auth": {
                    "required": self.config.require_api_key,
                    "expected_prefix": expected_prefix(configured_keys()),
                },
                "rollouts": {"running": limiter.running, "waiting": limiter.waiting},
                "tracing": self.runner.tracing.health(),
            }
        )

    async def info(self, request: Request) -> Response:
        base = self.config.base_task_info
        rubrics = self.config.rubrics or (base.rubric if base.rubric.outcome else None)
        rubrics_json = rubrics.model_dump(mode="json") if isinstance(rubrics, RubricInfo) else None
        if rubrics is not None and not isinstance(rubrics, RubricInfo):
            rubrics_json = rubrics.to_json()  # 0.2.24's RubricBundle, answered as 0.2.24 did
        return JSONResponse(
            {
                "service": {
                    "task": base.task.model_dump(mode="json"),
                    "version": base.task.version,
                    "app_id": self.config.app_id,
                    "name": self.config.name,
                    "description": self.config.description,
                },
                "dataset": base.dataset.model_dump(mode="json"),
                "datasets": [d.model_dump(mode="json") for d in self.config.datasets.describe()],
                "rubrics": rubrics_json,
                "inference": base.inference.model_dump(mode="json"),
                "limits": base.limits.model_dump(mode="json"),
                "server_limits": {
                    "max_concurrent_rollouts": self.config.max_concurrent_rollouts,
                    "max_queued_rollouts": self.config.max_queued_rollouts,
                    "max_rollout_seconds": self.config.max_rollout_seconds,
                    "max_request_bytes": self.config.max_request_bytes,
                },
                "contract_version": CONTRACT_VERSION,
            }
        )

    async def task_info(self, request: Request) -> Response:
        seeds = parse_seeds(request, self.config.max_seeds_per_request)
        if not seeds:
            if self.config.describe_taskset is None:
                taskset: Any = self.config.base_task_info.model_dump(mode="json")
            else:
                taskset = await call_maybe_async(self.config.describe_taskset)
            return JSONResponse({"taskset": taskset})
        if self.config.provide_task_instances is None:
            infos = [self.config.base_task_info.for_instance(seed=seed) for seed in seeds]
        else:
            infos = await call_maybe_async(self.config.provide_task_instances, seeds)
        payload = [TaskInfo.model_validate(info).model_dump(mode="json") for info in infos]
        return JSONResponse(payload[0] if len(seeds) == 1 else payload)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for hook in self.config.startup:
            await call_maybe_async(hook)
        for hook in self.config.startup_hooks:
            await call_hook(hook, app)
        try:
            yield
        finally:
            for hook in self.config.shutdown:
                await call_maybe_async(hook)
            for hook in self.config.shutdown_hooks:
                await call_hook(hook, app)
            await self.runner.close()


def standard_middleware(
    *,
    max_request_bytes: int,
    cors_origins: Sequence[str],
    require_api_key: bool,
    auth: type[AuthMiddleware] = AuthMiddleware,
    public_routes: Sequence[BaseRoute],
    body_limit_for: Callable[[Scope], int | None] | None = None,
) -> list[Middleware]:
    """Access log, body limit, CORS from an allow-list, then API-key auth, outermost first.

    The standard auth folds into the edge layer (one pass over the headers per request) unless
    CORS must sit between them; another auth class (the jobs server's tenants) is a layer of
    its own.
    """
    folded = require_api_key and not cors_origins and auth is AuthMiddleware
    middleware = [
        Middleware(
            EdgeMiddleware,
            max_bytes=max_request_bytes,
            limit_for=body_limit_for,
            public_routes=public_routes if folded else None,
        )
    ]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "HEAD", "OPTIONS"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "X-API-Key",
                    "X-API-Keys",
                    "Last-Event-ID",
                ],
            )
        )
    if require_api_key and not folded:
        middleware.append(Middleware(auth, public_routes=public_routes))
    return middleware


class TaskApp(Starlette):
    """A Starlette app with its edge layer outside Starlette's own server-error layer.

    The edge answers the hot route (`direct`, see `EdgeMiddleware`) itself, and so skips that
    layer and the router (about 40k instructions a rollout, 4-6% of the server's whole count:
    bench/direct_dispatch.py; tests/test_edge_direct.py holds its answers to the router's).
    Direct routes are taken only while no other middleware sits inside
    the edge, whether from the config or `add_middleware`: every layer an author adds sees
    every request.
    """

    def __init__(self, edge: Middleware, direct: Mapping[str, ASGIApp], **options: Any) -> None:
        self.edge = edge
        self.direct = dict(direct)
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        cls, args, kwargs = self.edge
        direct = None if self.user_middleware else self.direct
        return cls(super().build_middleware_stack(), *args, direct=direct, **kwargs)


def create_task_app(config: TaskAppConfig) -> TaskApp:
    """Build the ASGI app for a task app config (DESIGN.md 3.1-3.5); what 0.2.24 configs
    say besides is adapted by `published.py` (COMPATIBILITY.md)."""
    adapted = takes_http_request(config.rollout)
    if adapted:
        config = dataclasses.replace(config, rollout=http_request_executor(config.rollout))
    routes = TaskAppRoutes(config)
    rollout: ASGIApp = RolloutScope(routes.runner) if adapted else routes.runner
    public: list[BaseRoute] = [
        Route("/", routes.root, methods=["GET", "HEAD"]),
        Route("/openapi.json", routes.openapi, methods=["GET"]),
        *config.public_routes,
    ]
    protected: list[BaseRoute] = [
        # the hot path, matched first; a plain ASGI endpoint (no Request or Response objects)
        Route("/rollout", rollout, methods=["POST"], name="rollout"),
        Route("/health", routes.health, methods=["GET"]),
        Route("/info", routes.info, methods=["GET"]),
        Route("/task_info", routes.task_info, methods=["GET"]),
        *config.routes,
        *published_routes(config, routes),
    ]
    edge, *inner = standard_middleware(
        max_request_bytes=config.max_request_bytes,
        cors_origins=config.cors_origins or (),
        require_api_key=config.require_api_key,
        public_routes=public,
    )
    app = TaskApp(
        edge,
        direct={"/rollout": rollout},
        routes=[*protected, *public],
        middleware=[*inner, *config.middleware],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=routes.lifespan,
    )
    app.state.task_app = routes
    for name, value in config.app_state.items():
        setattr(app.state, name, value)
    if config.routers:
        app.router.default = RouterFallback(config.routers, app.state, app.router.default)
    return app


def published_routes(config: TaskAppConfig, routes: TaskAppRoutes) -> list[BaseRoute]:
    """0.2.24's extra routes, for a config that says something only 0.2.24 said."""
    extra: list[BaseRoute] = []
    if is_published(config):
        extra.append(done_route(config.app_id))
    if config.expose_debug_env:
        extra.append(debug_env_route())
    if config.proxy is not None:
        from .proxy_routes import ProxyRoutes

        proxy = ProxyRoutes(config.proxy, config.credentials, routes.runner.http)
        extra.extend(proxy.routes())
    return extra
