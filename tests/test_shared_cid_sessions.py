"""Concurrent rollouts sharing a correlation id each keep their own session (issue 26 item
18): every rollout that answers `trace_stored: true` is in the store."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx

from synth_ai.task import create_task_app, serve_in_background
from synth_ai.tracing_v3 import TraceReader

from .conftest import auth_headers, make_config
from .test_limits import wait_until

ROUNDS = 5
SHARING = 3


def test_concurrent_rollouts_sharing_a_cid_each_keep_their_session(tmp_path: Path) -> None:
    gate = threading.Event()

    def gated(request: Any, context: Any) -> dict[str, Any]:
        gate.wait(30)
        return {"run_id": request.run_id, "metrics": {"outcome_score": request.env.seed}}

    db = tmp_path / "traces.db"
    config = make_config(gated, tracing=True, trace_db=str(db), max_concurrent_rollouts=SHARING)

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=20) as client:
            for round_ in range(ROUNDS):
                gate.clear()
                bodies = [
                    {"trace_correlation_id": f"shared-{round_}", "env": {"seed": seed}}
                    for seed in range(SHARING)
                ]
                posts = [asyncio.create_task(client.post("/rollout", json=b)) for b in bodies]
                await wait_until(client, running=SHARING, waiting=0)
                gate.set()
                for response in await asyncio.gather(*posts):
                    assert response.status_code == 200, response.text
                    assert response.json()["pipeline_metadata"]["trace_stored"] is True
                    assert response.json()["trace_correlation_id"] == f"shared-{round_}"
            # a later attempt (a retry) replaces the session named by its cid, as before
            again = {"trace_correlation_id": "shared-0", "env": {"seed": 9}}
            assert (await client.post("/rollout", json=again)).status_code == 200

    try:
        with serve_in_background(create_task_app(config)) as url:
            asyncio.run(scenario(url))
    finally:
        gate.set()
    reader = TraceReader(db)
    try:
        sessions = reader.list_sessions(limit=1000)
    finally:
        reader.close()
    for round_ in range(ROUNDS):
        cid = f"shared-{round_}"
        mine = [s for s in sessions if s["metadata"]["trace_correlation_id"] == cid]
        assert len(mine) == SHARING, [s["session_id"] for s in mine]
        assert cid in {s["session_id"] for s in mine}
        seeds = sorted(s["metadata"]["seed"] for s in mine)
        if round_ == 0:  # the retry replaced whichever attempt held the cid's own session
            assert 9 in seeds and len(set(seeds)) == SHARING
        else:
            assert seeds == list(range(SHARING))
