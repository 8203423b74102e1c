"""Config features that must really take effect: middleware, hooks, CORS, registry discovery."""

from __future__ import annotations

import httpx
import pytest
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synth_ai.task import TaskAppEntry, create_task_app, serve_in_background
from synth_ai.task.registry import TaskAppRegistry

from .conftest import KEY, InProcess, make_config


class StampMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-stamped", b"yes")]
            await send(message)

        await self.app(scope, receive, stamped)


def test_middleware_is_applied() -> None:
    client = InProcess(create_task_app(make_config(middleware=[Middleware(StampMiddleware)])))
    assert client.get("/health", headers={"X-API-Key": KEY}).headers["x-stamped"] == "yes"


def test_startup_and_shutdown_hooks_run_sync_and_async() -> None:
    calls: list[str] = []

    async def async_start() -> None:
        calls.append("async start")

    config = make_config(
        startup=[lambda: calls.append("sync start"), async_start],
        shutdown=[lambda: calls.append("stop")],
    )
    with serve_in_background(create_task_app(config)) as url:
        assert httpx.get(f"{url}/").status_code == 200
        assert calls == ["sync start", "async start"]
    assert calls == ["sync start", "async start", "stop"]


def test_cors_answers_only_the_allow_list() -> None:
    client = InProcess(create_task_app(make_config(cors_origins=["https://ok.example"])))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    allowed = client.request(
        "OPTIONS", "/rollout", headers={"Origin": "https://ok.example", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ok.example"
    refused = client.request(
        "OPTIONS", "/rollout", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers
    with pytest.raises(ValueError, match="allow-list"):
        make_config(cors_origins=["*"])


def test_entry_points_are_discovered_by_a_fresh_registry() -> None:
    registry = TaskAppRegistry()
    assert registry.get("math-single-step").app_id == "math"
    assert [entry.app_id for entry in registry.entries()] == ["math"]


def test_names_cannot_be_taken_twice() -> None:
    registry = TaskAppRegistry()
    registry.register(TaskAppEntry(app_id="a", config_factory=make_config, aliases=("b",)))
    with pytest.raises(ValueError, match="already taken"):
        registry.register(TaskAppEntry(app_id="b", config_factory=make_config))
