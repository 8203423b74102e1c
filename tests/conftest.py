"""Shared fixtures: real uvicorn servers on loopback, the offline policy, keys in the env."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import settings
from starlette.applications import Starlette

from synth_ai.offline_policy import create_offline_policy_app
from synth_ai.task import (
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
    TaskAppConfig,
    TaskDescriptor,
    TaskInfo,
    create_task_app,
    serve_in_background,
)
from tests.postgres import (  # noqa: F401  (fixtures)
    database_url,
    module_database_url,
    postgres_url,
)

# CI explores the same examples on every run, so a landing never hinges on a lucky draw;
# developers' runs stay random and keep finding new cases.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

KEY = "kqzvwxjmnkqzvwxjmnQZVW"  # letters that no message or log line spells, see test_auth


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in (
        "ENVIRONMENT_API_KEY",
        "ENVIRONMENT_API_KEY_ALIASES",
        "DEV_ENVIRONMENT_API_KEY",
        "dev_environment_api_key",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVIRONMENT_API_KEY", KEY)
    return KEY


def echo_rollout(request: Any, context: Any) -> RolloutResponse:
    """A trivial sync executor: one step whose reward is the seed."""
    seed = request.env.seed or 0
    return RolloutResponse(
        run_id=request.run_id,
        trajectories=[
            RolloutTrajectory(
                env_id=context.env_id,
                policy_id=context.policy_id,
                steps=[RolloutStep(obs={"seed": seed}, reward=float(seed), done=True)],
            )
        ],
        metrics={"episode_returns": [float(seed)], "num_steps": 1},
    )


def make_config(rollout: Callable[..., Any] = echo_rollout, **overrides: Any) -> TaskAppConfig:
    base = TaskInfo(task=TaskDescriptor(id="echo", name="Echo", version="0.1"), environment="echo")
    options: dict[str, Any] = {
        "app_id": "echo",
        "name": "Echo app",
        "description": "Test app",
        "base_task_info": base,
        "rollout": rollout,
    }
    options.update(overrides)
    return TaskAppConfig(**options)


@pytest.fixture(scope="session")
def offline_policy_url() -> Iterator[str]:
    with serve_in_background(create_offline_policy_app(error_rate=0.0)) as url:
        yield url


@pytest.fixture(scope="session")
def math_app() -> Starlette:
    from synth_ai.examples.math_task_app import build_config

    return create_task_app(build_config())


@pytest.fixture(scope="session")
def math_app_url(math_app: Starlette) -> Iterator[str]:
    with serve_in_background(math_app) as url:
        yield url


def auth_headers(key: str = KEY) -> dict[str, str]:
    return {"X-API-Key": key}


def rollout_body(seed: int = 1, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "run_id": f"run-{seed}",
        "env": {"seed": seed},
        "policy": {"config": {}},
    }
    body.update(extra)
    return body


async def read_whole_body(receive: Any) -> bytes:
    """Drain an ASGI request body (for test middleware that looks at it first)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def replaying(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the app `body` once, then defers to the real one."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class InProcess:
    """Calls an ASGI app in-process through httpx's ASGI transport (app errors are raised)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def wait_for(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    """Wait, polling, for a condition another thread or process makes true (with a deadline)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
