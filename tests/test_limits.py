"""Execution rules: deadlines, bounded concurrency with 429, and cancellation on disconnect."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from synth_ai.task import create_task_app, serve_in_background

from .conftest import KEY, make_config, rollout_body

HEADERS = {"X-API-Key": KEY}


async def wait_until(client: httpx.AsyncClient, running: int, waiting: int) -> None:
    """Poll /health until the limiter reports the wanted numbers (bounded, no sleeps)."""
    for _ in range(5000):
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
