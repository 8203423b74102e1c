"""TaskAppClient: auth headers, typed errors, and retries only for what is worth retrying."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from synth_ai.task import (
    SyncTaskAppClient,
    TaskAppClient,
    TaskAppClientError,
    serve_in_background,
)
from synth_ai.task.client import retry_after_seconds

from .conftest import KEY


class Script:
    """A real server that answers a scripted sequence of statuses, then 200."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, dict[str, str]]] = []
        self.seen: list[dict[str, str]] = []

    async def endpoint(self, request: Request) -> JSONResponse:
        self.seen.append(dict(request.headers))
        status, headers = self.plan.pop(0) if self.plan else (200, {})
        body = (
            {"ok": True}
            if status < 400
            else {"detail": {"error": {"code": f"code_{status}", "message": "scripted"}}}
        )
        return JSONResponse(body, status_code=status, headers=headers)


@pytest.fixture(scope="module")
def script() -> Iterator[tuple[Script, str]]:
    script = Script()
    app = Starlette(routes=[Route("/health", script.endpoint, methods=["GET"])])
    with serve_in_background(app) as url:
        yield script, url


class RecordingClient(TaskAppClient):
    """Records the backoff pauses instead of waiting them out."""

    pauses: list[float]

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
def sleeps() -> list[float]:
    RecordingClient.pauses = []
    return RecordingClient.pauses


def health(url: str, **options: Any) -> Any:
    async def call() -> Any:
        async with RecordingClient(url, KEY, **options) as client:
            return await client.health()

    return asyncio.run(call())


def test_sends_all_three_auth_headers(script: tuple[Script, str], sleeps: list[float]) -> None:
    server, url = script
    server.seen.clear()
    health(url)
    headers = server.seen[-1]
    assert headers["x-api-key"] == KEY
    assert headers["x-api-keys"] == KEY
    assert headers["authorization"] == f"Bearer {KEY}"


def test_retries_429_honouring_retry_after_and_5xx_with_jitter(
    script: tuple[Script, str], sleeps: list[float]
) -> None:
    server, url = script
    server.plan = [(429, {"Retry-After": "2"}), (503, {}), (504, {})]
    assert health(url, backoff_s=0.1) == {"ok": True}
    assert sleeps[0] == 2.0
    assert 0 <= sleeps[1] <= 0.2 and 0 <= sleeps[2] <= 0.4


def test_other_4xx_are_raised_at_once_with_the_server_code(
    script: tuple[Script, str], sleeps: list[float]
) -> None:
    server, url = script
    server.plan = [(404, {})]
    server.seen.clear()
    with pytest.raises(TaskAppClientError) as info:
        health(url)
    assert (info.value.status, info.value.code, info.value.message) == (404, "code_404", "scripted")
    assert len(server.seen) == 1 and sleeps == []


def test_gives_up_after_max_retries(script: tuple[Script, str], sleeps: list[float]) -> None:
    server, url = script
    server.plan = [(502, {})] * 3
    with pytest.raises(TaskAppClientError) as info:
        health(url, max_retries=2)
    assert info.value.status == 502 and len(sleeps) == 2
    server.plan.clear()


class FlakyTransport(httpx.AsyncBaseTransport):
    """Fails the first `failures` requests at the transport level, then sends for real."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.real.handle_async_request(request)


def test_retries_transport_errors_then_succeeds(
    script: tuple[Script, str], sleeps: list[float]
) -> None:
    _, url = script
    assert health(url, transport=FlakyTransport(failures=2)) == {"ok": True}
    assert len(sleeps) == 2
    with pytest.raises(TaskAppClientError) as info:
        health(url, transport=FlakyTransport(failures=5), max_retries=1)
    assert info.value.status is None and info.value.code == "transport_error"


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("100000") == 60.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_sync_client_against_the_math_app(math_app_url: str, offline_policy_url: str) -> None:
    with SyncTaskAppClient(math_app_url, KEY) as client:
        assert client.health()["healthy"] is True
        assert client.info()["contract_version"]
        info = client.task_info(5)
        assert info.task_metadata["seed"] == 5
        assert [i.task_metadata["seed"] for i in client.task_info([1, 2])] == [1, 2]
        response = client.rollout(
            {
                "run_id": "sync-1",
                "env": {"seed": 5},
                "policy": {"config": {"inference_url": offline_policy_url}},
            }
        )
        assert response.metrics.outcome_score == 1.0
        assert response.pipeline_metadata["inference_url"].endswith("cid=sync-1")


def test_sync_client_works_inside_a_running_event_loop(math_app_url: str) -> None:
    """As in a notebook cell or an async framework's sync callback."""

    async def inside() -> bool:
        with SyncTaskAppClient(math_app_url, KEY) as client:
            return bool(client.health()["healthy"])

    assert asyncio.run(inside()) is True
