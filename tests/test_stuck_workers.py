"""A sync executor stuck in a blocking call past its deadline keeps its slot until its worker
thread returns (issue 26 item 13): new rollouts wait or get 429, never 504 without starting,
and /health counts the stuck worker as running."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from synth_ai.task import create_task_app, serve_in_background

from .conftest import auth_headers, make_config, rollout_body
from .test_limits import wait_until

ROUNDS = 5


@pytest.mark.parametrize("max_queued", [0, 1])
def test_a_stuck_worker_holds_its_slot_until_it_returns(max_queued: int) -> None:
    gate = threading.Event()
    started: list[str] = []

    def blocking(request: Any, context: Any) -> dict[str, Any]:
        started.append(request.run_id)
        if request.env.seed == 0:
            gate.wait(30)  # a blocking call that does not look at context.cancelled
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    config = make_config(blocking, max_concurrent_rollouts=1, max_queued_rollouts=max_queued)

    async def round_(client: httpx.AsyncClient, n: int) -> None:
        gate.clear()
        started.clear()
        stuck = await client.post(
            "/rollout", json=rollout_body(0, run_id=f"stuck-{n}", safety={"max_time_s": 0.2})
        )
        assert stuck.status_code == 504, stuck.text
        health = (await client.get("/health")).json()["rollouts"]
        assert health == {"running": 1, "waiting": 0}, health
        if max_queued == 0:
            refused = await client.post("/rollout", json=rollout_body(1, run_id=f"next-{n}"))
            assert refused.status_code == 429, refused.text
            gate.set()
            await wait_until(client, running=0, waiting=0)
            after = await client.post("/rollout", json=rollout_body(1, run_id=f"next-{n}"))
            assert after.status_code == 200, after.text
        else:
            queued = asyncio.create_task(
                client.post("/rollout", json=rollout_body(1, run_id=f"next-{n}"))
            )
            await wait_until(client, running=1, waiting=1)
            gate.set()
            assert (await queued).status_code == 200
        assert started == [f"stuck-{n}", f"next-{n}"]
        await wait_until(client, running=0, waiting=0)

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=20) as client:
            for n in range(ROUNDS):
                await round_(client, n)

    try:
        with serve_in_background(create_task_app(config)) as url:
            asyncio.run(scenario(url))
    finally:
        gate.set()
