"""Execution rules: deadlines, bounded concurrency with 429, and cancellation on disconnect."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import httpx
import pytest

from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.connections import (
    DEFAULT_MAX_CONNECTIONS,
    MAX_CONNECTIONS_ENV,
    resolve_max_connections,
)

from .conftest import KEY, make_config, rollout_body

HEADERS = {"X-API-Key": KEY}


async def wait_until(client: httpx.AsyncClient, running: int, waiting: int) -> None:
    """Poll /health until the limiter reports the wanted numbers (within 30 s, no sleeps)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rollouts = (await client.get("/health")).json()["rollouts"]
        if rollouts == {"running": running, "waiting": waiting}:
            return
    raise AssertionError(f"limiter never reached running={running} waiting={waiting}")


def test_overload_gets_429_with_retry_after_and_the_server_stays_healthy() -> None:
    gate = threading.Event()

    def blocking(request: Any, context: Any) -> dict[str, Any]:
        gate.wait(30)
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    config = make_config(blocking, max_concurrent_rollouts=2, max_queued_rollouts=2)

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
            admitted = [
                asyncio.create_task(client.post("/rollout", json=rollout_body(i))) for i in range(4)
            ]
            await wait_until(client, running=2, waiting=2)
            refused = await asyncio.gather(
                *(client.post("/rollout", json=rollout_body(9)) for _ in range(3))
            )
            for response in refused:
                assert response.status_code == 429
                assert response.headers["retry-after"] == "1"
                assert response.json()["detail"]["error"]["code"] == "overloaded"
            assert (await client.get("/health")).status_code == 200
            gate.set()
            for response in await asyncio.gather(*admitted):
                assert response.status_code == 200
            await wait_until(client, running=0, waiting=0)

    try:
        with serve_in_background(create_task_app(config)) as url:
            asyncio.run(scenario(url))
    finally:
        gate.set()


@pytest.mark.parametrize("limit_by", ["config", "safety"])
def test_an_async_executor_past_its_deadline_gets_504(limit_by: str) -> None:
    async def sleepy(request: Any, context: Any) -> dict[str, Any]:
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    config_limit = 0.2 if limit_by == "config" else 60
    body = rollout_body(safety={"max_time_s": 0.2} if limit_by == "safety" else {})
    with serve_in_background(
        create_task_app(make_config(sleepy, max_rollout_seconds=config_limit))
    ) as url:
        response = httpx.post(f"{url}/rollout", json=body, headers=HEADERS, timeout=10)
        assert response.status_code == 504
        error = response.json()["detail"]["error"]
        assert error["code"] == "rollout_timeout"
        assert error["timeout_s"] == 0.2
        assert httpx.get(f"{url}/health", headers=HEADERS).json()["rollouts"]["running"] == 0


def test_an_executors_own_timeout_is_its_failure_not_the_deadline() -> None:
    async def impatient(request: Any, context: Any) -> dict[str, Any]:
        async with asyncio.timeout(0):
            await asyncio.sleep(30)
        raise AssertionError("not reached")

    with serve_in_background(create_task_app(make_config(impatient))) as url:
        response = httpx.post(f"{url}/rollout", json=rollout_body(), headers=HEADERS, timeout=10)
    assert response.status_code == 500
    assert response.json()["detail"]["error"]["code"] == "rollout_failed"


def test_a_sync_executor_past_its_deadline_is_told_to_stop() -> None:
    told = threading.Event()

    def stubborn(request: Any, context: Any) -> dict[str, Any]:
        if context.cancelled.wait(30):
            told.set()
        return {}

    with serve_in_background(
        create_task_app(make_config(stubborn, max_rollout_seconds=0.2))
    ) as url:
        response = httpx.post(f"{url}/rollout", json=rollout_body(), headers=HEADERS, timeout=10)
        assert response.status_code == 504
        assert told.wait(10)


def test_a_client_that_disconnects_cancels_its_rollout() -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def endless(request: Any, context: Any) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    with serve_in_background(create_task_app(make_config(endless))) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/rollout", json=rollout_body(), headers=HEADERS, timeout=0.5)
        assert started.wait(10)
        assert cancelled.wait(10), "the executor was not cancelled when the client left"

        async def drained() -> None:
            async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
                await wait_until(client, running=0, waiting=0)

        asyncio.run(drained())


def test_connections_past_the_cap_get_503_not_a_hang_and_the_server_recovers() -> None:
    with serve_in_background(create_task_app(make_config()), max_connections=8) as url:
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(9)]
        try:
            refused = httpx.get(f"{url}/", timeout=10)
            assert refused.status_code == 503
            assert refused.headers["connection"] == "close"
        finally:
            for sock in idle:  # close, and wait until the server has dropped its end too
                sock.shutdown(socket.SHUT_WR)
                assert sock.recv(1) == b""
                sock.close()
        with httpx.Client(base_url=url, headers=HEADERS, timeout=10) as client:
            assert client.get("/").status_code == 200
            assert client.post("/rollout", json=rollout_body(3)).json()["metrics"]["outcome_score"]


def test_the_cap_comes_from_the_environment_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MAX_CONNECTIONS_ENV, raising=False)
    assert resolve_max_connections() == DEFAULT_MAX_CONNECTIONS == 2048
    monkeypatch.setenv(MAX_CONNECTIONS_ENV, "64")
    assert resolve_max_connections() == 64
    assert resolve_max_connections(16) == 16
    for bad in ("many", "0", "-3"):
        monkeypatch.setenv(MAX_CONNECTIONS_ENV, bad)
        with pytest.raises(ValueError, match=MAX_CONNECTIONS_ENV):
            resolve_max_connections()


@pytest.mark.skipif(sys.platform == "win32", reason="no rlimits")
def test_serving_raises_the_soft_open_file_limit_to_hold_the_cap() -> None:
    """In a child process whose soft limit starts low, so this one's is left alone."""
    code = textwrap.dedent(
        """
        import json, resource
        from starlette.applications import Starlette
        from synth_ai.task import serve_in_background
        from synth_ai.task.connections import FD_HEADROOM
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        with serve_in_background(Starlette(), max_connections=1000):
            now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        print(json.dumps({"soft": now, "hard": hard, "needed": 1000 + FD_HEADROOM}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    limits = json.loads(result.stdout.strip().splitlines()[-1])
    import resource

    if limits["hard"] == resource.RLIM_INFINITY:
        assert limits["soft"] >= limits["needed"]
    else:
        assert limits["soft"] == limits["hard"], limits  # raised as far as allowed
    assert limits["soft"] > 256
