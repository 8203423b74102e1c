"""A request is public only when the route it reaches is public for its path AND its method.

Writes that share a path with a public read (the jobs server's artifact upload beside its
download, an author's POST beside a public GET) need a key, and a request without one is
refused before any lookup, so the answer says nothing about what exists. A property test
generates route tables and holds the edge to a small model of Starlette's routing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from synth_ai.jobs import create_jobs_app
from synth_ai.jobs.tenants import TenantAuthMiddleware
from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.auth import AuthMiddleware
from synth_ai.task.server import standard_middleware

from .conftest import KEY, make_config, rollout_body

HEADERS = {"X-API-Key": KEY}


def assert_unauthorised(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    if response.request.method != "HEAD":  # a HEAD answer has no body
        assert response.json()["detail"]["error"]["code"] == "unauthorised"


def test_an_upload_without_a_key_is_refused_and_changes_nothing(
    database_url: str, tmp_path: Any
) -> None:
    """The public download made the upload beside it public: 201 with no key, on any job."""
    app = create_jobs_app(database_url, artifacts_dir=tmp_path / "artifacts")
    with serve_in_background(app) as url:
        job_id = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
        name = f"/api/jobs/{job_id}/artifacts/results.jsonl"
        stored = httpx.put(f"{url}{name}", content=b"the owner's results\n", headers=HEADERS)
        assert stored.status_code == 201, stored.text
        events = httpx.get(f"{url}/api/jobs/{job_id}/events", headers=HEADERS).json()["events"]
        for prefix in ("/api/jobs", "/rl/jobs", "/api/rl/jobs"):
            for job in (job_id, "job_missing"):
                path = f"{url}{prefix}/{job}/artifacts/results.jsonl"
                assert_unauthorised(httpx.put(path, content=b"overwritten\n"))
                assert_unauthorised(httpx.put(path, params={"kind": "x y"}, content=b""))
        assert httpx.get(f"{url}{name}", headers=HEADERS).content == b"the owner's results\n"
        after = httpx.get(f"{url}/api/jobs/{job_id}/events", headers=HEADERS).json()["events"]
        assert after == events
        assert httpx.get(f"{url}{name}").status_code == 401  # the download still asks too


@pytest.fixture(scope="module")
def status_app() -> Iterator[str]:
    """An author's task app: a public GET /status beside a protected POST /status, and a
    protected /items/secret listed before a public /items/{id} that also matches it."""

    async def read(request: Request) -> Response:
        return JSONResponse({"read": True})

    async def write(request: Request) -> Response:
        return JSONResponse({"written": True})

    async def secret(request: Request) -> Response:
        return JSONResponse({"secret": True})

    config = make_config(
        routes=[
            Route("/status", write, methods=["POST"]),
            Route("/items/secret", secret, methods=["GET"]),
        ],
        public_routes=[
            Route("/status", read, methods=["GET"]),
            Route("/items/{item}", read, methods=["GET"]),
        ],
    )
    with serve_in_background(create_task_app(config)) as url:
        yield url


def test_a_public_read_leaves_the_write_on_its_path_protected(status_app: str) -> None:
    assert httpx.get(f"{status_app}/status").json() == {"read": True}
    assert httpx.head(f"{status_app}/status").status_code == 200
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        assert_unauthorised(httpx.request(method, f"{status_app}/status"))
    assert httpx.post(f"{status_app}/status", headers=HEADERS).json() == {"written": True}
    assert httpx.put(f"{status_app}/status", headers=HEADERS).status_code == 405


def test_a_protected_route_is_not_opened_by_a_public_pattern_after_it(status_app: str) -> None:
    assert httpx.get(f"{status_app}/items/7").json() == {"read": True}
    assert_unauthorised(httpx.get(f"{status_app}/items/secret"))
    assert httpx.get(f"{status_app}/items/secret", headers=HEADERS).json() == {"secret": True}


# --- the property: the edge against a model of the router ------------------------------------

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
TEMPLATES = ["/x", "/x/y", "/x/{id}", "/x/{id}/z", "/x/y/z", "/y/{n:int}", "/{any}"]
PATHS = ["/x", "/x/", "/x/y", "/x/7", "/x/7/z", "/x/y/z", "/y/7", "/y/q", "/z", "/"]


@dataclass(frozen=True)
class Spec:
    template: str
    methods: frozenset[str] | None  # None: an ASGI endpoint without methods takes every one
    public: bool

    def matches(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\{\w+:int\}", "[0-9]+", self.template)
        pattern = re.sub(r"\{\w+\}", "[^/]+", pattern)
        if not re.fullmatch(pattern, path):
            return False
        allowed = self.methods
        return allowed is None or method in allowed or (method == "HEAD" and "GET" in allowed)


def model(table: list[Spec], method: str, path: str) -> int | None:
    """The route the router sends the request to: the first that matches path and method."""
    return next((i for i, spec in enumerate(table) if spec.matches(method, path)), None)


class Endpoint:
    """An ASGI endpoint answering its own index, so a test sees which route ran."""

    def __init__(self, index: int) -> None:
        self.index = index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"route": self.index})(scope, receive, send)


class Swappable:
    """One served app whose routes each example replaces (a server per example is slow)."""

    def __init__(self) -> None:
        self.app: ASGIApp = Starlette()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def swappable() -> Iterator[tuple[Swappable, httpx.Client]]:
    served = Swappable()
    with serve_in_background(served) as url, httpx.Client(base_url=url) as client:
        yield served, client


specs = st.builds(
    Spec,
    template=st.sampled_from(TEMPLATES),
    methods=st.one_of(st.none(), st.frozensets(st.sampled_from(METHODS), min_size=1)),
    public=st.booleans(),
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    table=st.lists(specs, min_size=1, max_size=6),
    requests=st.lists(st.tuples(st.sampled_from(METHODS), st.sampled_from(PATHS)), max_size=6),
    auth=st.sampled_from([AuthMiddleware, TenantAuthMiddleware]),
)
def test_no_key_reaches_exactly_the_routes_the_model_calls_public(
    swappable: tuple[Swappable, httpx.Client],
    table: list[Spec],
    requests: list[tuple[str, str]],
    auth: type[AuthMiddleware],
) -> None:
    """Without a key a request reaches its route only when that route is public (any other
    answer is 401); with one, it reaches the route the model names (the model is right)."""
    served, client = swappable
    routes: list[BaseRoute] = [
        Route(spec.template, Endpoint(i), methods=None if spec.methods is None else [*spec.methods])
        for i, spec in enumerate(table)
    ]
    public = [route for route, spec in zip(routes, table, strict=True) if spec.public]
    # AuthMiddleware folds into the edge; the jobs server's tenant auth is a layer of its own
    middleware = standard_middleware(
        max_request_bytes=1024,
        cors_origins=(),
        require_api_key=True,
        auth=auth,
        public_routes=public,
    )
    served.app = Starlette(routes=routes, middleware=middleware)
    for method, path in requests:
        reached = model(table, method, path)
        keyless = client.request(method, path)
        if reached is not None and table[reached].public:
            assert keyless.status_code == 200, (method, path, keyless.text)
            if method != "HEAD":
                assert keyless.json() == {"route": reached}
        else:
            assert_unauthorised(keyless)
        keyed = client.request(method, path, headers=HEADERS)
        if reached is None:
            assert keyed.status_code in (404, 405, 307), (method, path)
        elif method != "HEAD":
            assert keyed.json() == {"route": reached}, (method, path)


def test_a_public_route_an_author_puts_at_post_rollout_does_not_open_the_rollout() -> None:
    """POST /rollout is answered straight from the edge, and always needs a key: the app's
    own protected route comes first, so a public route at the same path and method opens
    nothing (as with any protected route listed before a public one)."""

    async def open_door(request: Request) -> Response:
        return JSONResponse({"open": True})

    config = make_config(public_routes=[Route("/rollout", open_door, methods=["POST"])])
    with serve_in_background(create_task_app(config)) as url:
        keyless = httpx.post(f"{url}/rollout", json=rollout_body())
        keyed = httpx.post(f"{url}/rollout", json=rollout_body(), headers=HEADERS)
    assert_unauthorised(keyless)
    assert keyed.status_code == 200 and "open" not in keyed.json()
