"""Evaluation jobs against real servers: scale, flaky apps, cancellation, streams, old apps."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from synth_ai.cli import main
from synth_ai.eval import EvalConfig, EvalJobKind, parse_seeds, read_results, run_eval
from synth_ai.examples.math_task_app import build_config
from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.task import TaskAppClient, create_task_app, serve_in_background

from .conftest import KEY, make_config, read_whole_body, replaying

HEADERS = {"X-API-Key": KEY}


def config_for(url: str, policy_url: str, seeds: list[int], **extra: Any) -> EvalConfig:
    return EvalConfig(
        task_app_url=url,
        api_key=KEY,
        seeds=seeds,
        model="offline-policy",
        inference_url=policy_url,
        **extra,
    )


def test_seed_specs() -> None:
    assert parse_seeds("0-3,7, 2 ,9-10") == [0, 1, 2, 3, 7, 9, 10]
    for bad in ("", "a-b", "5-1", "1-"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_100_seeds_at_concurrency_16(
    math_app_url: str, offline_policy_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    config = config_for(math_app_url, offline_policy_url, list(range(100)), concurrency=16)
    results, summary = asyncio.run(run_eval(config, results_path=out))
    assert sorted(r.seed for r in results) == list(range(100))
    assert summary.completed == 100 and summary.mean_reward == 1.0 and summary.success_rate == 1.0
    assert sorted(r.seed for r in read_results(out)) == list(range(100))
    assert summary.p50_latency_s is not None and summary.p95_latency_s >= summary.p50_latency_s


class RefuseOnce:
    """Answers 429 (Retry-After: 0) to the first rollout of each listed seed."""

    def __init__(self, app: ASGIApp, seeds: set[int], log: Counter[int]) -> None:
        self.app, self.seeds, self.log = app, seeds, log
        self.refused: set[int] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/rollout":
            await self.app(scope, receive, send)
            return
        body = await read_whole_body(receive)
        seed = json.loads(body)["env"]["seed"]
        self.log[seed] += 1
        if seed in self.seeds and seed not in self.refused:
            self.refused.add(seed)
            error = {"detail": {"error": {"code": "overloaded", "message": "busy"}}}
            response = JSONResponse(error, status_code=429, headers={"Retry-After": "0"})
            await response(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)


class DropOnce(httpx.AsyncBaseTransport):
    """Drops the connection of the first rollout request of each listed seed."""

    def __init__(self, seeds: set[int]) -> None:
        self.seeds, self.dropped, self.real = seeds, set(), httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/rollout":
            seed = json.loads(request.content)["env"]["seed"]
            if seed in self.seeds and seed not in self.dropped:
                self.dropped.add(seed)
                raise httpx.RemoteProtocolError("server disconnected without sending a response")
        return await self.real.handle_async_request(request)


def test_refusals_are_retried_and_dropped_connections_reported_both_counted_once(
    offline_policy_url: str,
) -> None:
    seen: Counter[int] = Counter()
    config = build_config()
    config.middleware = [Middleware(RefuseOnce, seeds={3, 7, 11}, log=seen)]
    with serve_in_background(create_task_app(config)) as url:
        eval_config = config_for(url, offline_policy_url, list(range(20)), concurrency=4)
        transport = DropOnce({5, 13})
        results, _ = asyncio.run(run_eval(eval_config, transport=transport))
    assert sorted(r.seed for r in results) == list(range(20))  # each seed once
    # a connection dropped after the request was sent may follow a started rollout: not resent
    failed = {r.seed: r.status for r in results if r.status != "ok"}
    assert failed == {5: "infra_error", 13: "infra_error"}
    assert {s for s, n in seen.items() if n == 2} == {3, 7, 11}  # refused, then served
    assert transport.dropped == {5, 13} and seen[5] == seen[13] == 0


def test_persistent_infrastructure_errors_are_reported_apart(offline_policy_url: str) -> None:
    async def down(request: Any, context: Any) -> Any:
        from synth_ai.task import InfrastructureError

        if request.env.seed % 2:
            raise InfrastructureError("inference_unreachable", "policy is down")
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    with serve_in_background(create_task_app(make_config(down))) as url:
        config = config_for(url, offline_policy_url, list(range(6)))
        results, summary = asyncio.run(run_eval(config))
    assert Counter(r.status for r in results) == {"ok": 3, "infra_error": 3}
    assert summary.mean_reward == 1.0  # infrastructure errors are not counted as reward 0
    assert summary.errors_by_kind == {"inference_unreachable": 3} and summary.infra_errors == 3


@pytest.fixture
def jobs_url(tmp_path: Path) -> Iterator[str]:
    app = create_jobs_app(
        tmp_path / "jobs.db",
        settings=StreamSettings(end_grace_s=0.05),
        kinds={"eval": EvalJobKind()},
    )
    with serve_in_background(app) as url:
        yield url


def test_the_event_stream_matches_the_results_file(
    jobs_url: str, math_app_url: str, offline_policy_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    config = config_for(
        math_app_url,
        offline_policy_url,
        list(range(30)),
        prompt_template={"system": "Use the tool.", "user": "{problem}"},
    )

    async def scenario() -> list[Any]:
        async with TaskAppClient(jobs_url, KEY) as client:
            job = await client.create_job("eval", config.model_dump())
            assert "api_key" not in job["config"]  # the key is never stored
            live = [e async for e in client.stream_job(job["job_id"])]
            replayed = [e async for e in client.stream_job(job["job_id"], since_id=0)]

            # live, metrics are coalesced per name; everything else arrives as replayed
            def kept(events: list[Any]) -> list[int]:
                return [e.seq for e in events if e.sse_name != "metric"]

            assert kept(live) == kept(replayed)

            def last_values(events: list[Any]) -> dict[str, Any]:
                return {e.data["name"]: e.data["value"] for e in events if e.type == "eval.metric"}

            assert last_values(live) == last_values(replayed)
            # the server chose where the results went; they come back through the API
            artifacts = await client.artifacts(job["job_id"])
            assert [a["name"] for a in artifacts] == ["results.jsonl"]
            await client.download_artifact(job["job_id"], "results.jsonl", out)
            return replayed

    events = asyncio.run(scenario())
    assert events[-1].state is not None and events[-1].state.value == "succeeded"
    streamed = {e.data["seed"]: e.data["reward"] for e in events if e.type == "eval.result"}
    assert streamed == {r.seed: r.reward for r in read_results(out)}
    types = [e.type for e in events]
    assert "prompt.learning.started" in types and "prompt.learning.final.results" in types
    assert types.index("prompt.learning.final.results") < len(types) - 1
    final = next(e for e in events if e.type == "prompt.learning.final.results")
    assert final.data["score"] == 1.0
    results_url = f"/api/jobs/{events[0].job_id}/artifacts/results.jsonl"
    assert any(e.type == "artifact.results" and e.data["url"] == results_url for e in events)


def test_a_canceled_job_ends_canceled_and_stops_rolling_out(
    jobs_url: str, offline_policy_url: str
) -> None:
    started: list[int] = []

    def slow(request: Any, context: Any) -> dict[str, Any]:
        started.append(request.env.seed)
        context.cancelled.wait(10) if request.env.seed >= 2 else None
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    with serve_in_background(create_task_app(make_config(slow))) as url:
        config = config_for(url, offline_policy_url, list(range(50)), concurrency=2)

        async def scenario() -> str:
            async with TaskAppClient(jobs_url, KEY) as client:
                job = await client.create_job("eval", config.model_dump())
                async for event in client.stream_job(job["job_id"]):
                    if event.type == "eval.result" and event.data["seed"] == 1:
                        await client.request("POST", f"/api/jobs/{job['job_id']}/cancel")
                    if event.state is not None and event.state.terminal:
                        return event.state.value
            raise AssertionError("no terminal status")

        assert asyncio.run(scenario()) == "canceled"
        count = len(started)
        with httpx.Client(base_url=url, headers=HEADERS) as client:  # the app is idle again
            deadline = time.monotonic() + 30  # polled, no sleeps; a deadline, not a count
            while time.monotonic() < deadline:
                if client.get("/health").json()["rollouts"]["running"] == 0:
                    break
        assert len(started) == count <= 4, started


def test_a_minimal_third_party_app_with_the_older_response_shape(
    offline_policy_url: str, tmp_path: Path
) -> None:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"healthy": True})

    async def task_info(request: Request) -> JSONResponse:
        return JSONResponse({"taskset": {"name": "legacy"}})

    async def rollout(request: Request) -> JSONResponse:
        body = await request.json()
        reward = float(body["env"]["seed"] % 2)
        return JSONResponse(
            {
                "run_id": body["run_id"],
                "trajectories": [{"env_id": "legacy", "policy_id": "p", "steps": [], "length": 0}],
                "metrics": {"episode_returns": [reward], "mean_return": reward, "num_steps": 1},
            }
        )

    legacy = Starlette(
        routes=[
            Route("/health", health),
            Route("/task_info", task_info),
            Route("/rollout", rollout, methods=["POST"]),
        ]
    )
    with serve_in_background(legacy) as url:
        config = config_for(url, offline_policy_url, list(range(10)))
        results, summary = asyncio.run(run_eval(config))
    assert {r.seed: r.reward for r in results} == {s: float(s % 2) for s in range(10)}
    assert summary.mean_reward == 0.5 and summary.success_rate == 0.5


def test_the_eval_command_checks_the_app_first_and_runs_locally(
    math_app_url: str, offline_policy_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    refused = runner.invoke(main, ["eval", math_app_url, "--api-key", "wrong", "--seeds", "0-2"])
    assert refused.exit_code == 3 and "/health check failed" in refused.output
    out = tmp_path / "r.jsonl"
    ok = runner.invoke(
        main,
        [
            "eval",
            "math",
            "--seeds",
            "0-11",
            "--offline-policy",
            "--out",
            str(out),
            "--jobs-db",
            str(tmp_path / "jobs.db"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "mean reward" in ok.output and "1.000" in ok.output
    assert len(read_results(out)) == 12


def test_eval_runs_on_a_jobs_server_started_by_the_cli(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synth_ai",
            "jobs",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "jobs.db"),
        ],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:  # wait for uvicorn to say it listens
            if "Uvicorn running on" in line:
                break
        out = tmp_path / "r.jsonl"
        result = CliRunner().invoke(
            main,
            [
                "eval",
                "math",
                "--seeds",
                "0-5",
                "--offline-policy",
                "--out",
                str(out),
                "--jobs-server",
                f"http://127.0.0.1:{port}",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "mean reward" in result.output and len(read_results(out)) == 6
    finally:
        server.terminate()
        server.wait(10)
