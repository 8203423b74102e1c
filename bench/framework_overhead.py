"""/rollout throughput with a trivial executor: this framework versus a bare Starlette handler
returning the same JSON, and versus the same app on the published `synth-ai==0.2.24`; plus
/health throughput and p99 under 64 connections.

Goals (DESIGN.md 8): at least 0.85x the bare handler and at least 2x the published framework.
The published release is installed by this script into bench/.cache/published.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import LoadResult, load, median_run, record, server_process

KEY = "bench-key"
PUBLISHED = "synth-ai==0.2.24"
CACHE = Path(__file__).with_name(".cache")
PUBLISHED_VENV = CACHE / "published"
ROUNDS = 3
CONCURRENCY = 32


def trivial_response(run_id: str, seed: int | None) -> dict:
    return {
        "run_id": run_id,
        "trajectories": [
            {
                "env_id": "trivial",
                "policy_id": "p",
                "length": 1,
                "steps": [{"obs": {"seed": seed}, "tool_calls": [], "reward": 1.0, "done": True}],
            }
        ],
        "metrics": {
            "episode_returns": [1.0],
            "mean_return": 1.0,
            "num_steps": 1,
            "outcome_score": 1.0,
        },
    }


def ours() -> object:
    from synth_ai.task import TaskAppConfig, TaskDescriptor, TaskInfo, create_task_app

    async def rollout(request, context):
        return trivial_response(request.run_id, request.env.seed)

    base = TaskInfo(task=TaskDescriptor(id="trivial", name="Trivial"), environment="trivial")
    return create_task_app(
        TaskAppConfig(
            app_id="trivial",
            name="Trivial",
            description="bench",
            base_task_info=base,
            rollout=rollout,
        )
    )


def bare() -> object:
    """A bare Starlette handler answering the JSON our app answers (captured once)."""
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def capture() -> dict:
        transport = httpx.ASGITransport(app=ours())
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            response = await client.post("/rollout", json=body(0), headers={"X-API-Key": KEY})
            return response.json()

    answer = asyncio.run(capture())

    async def rollout(request: Request) -> JSONResponse:
        await request.json()
        return JSONResponse(answer)

    return Starlette(routes=[Route("/rollout", rollout, methods=["POST"])])


def body(n: int) -> dict:
    return {
        "run_id": f"r{n}",
        "env": {"seed": n % 1000, "config": {}},
        "policy": {"config": {}},
        "ops": [],
        "mode": "eval",  # the published release requires it
    }


def ensure_published() -> Path | None:
    python = PUBLISHED_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {PUBLISHED} into {PUBLISHED_VENV} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PUBLISHED_VENV)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", PUBLISHED])
        if done.returncode != 0:
            return None
    return python


@contextlib.contextmanager
def published_server(python: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    process = subprocess.Popen(
        [str(python), str(Path(__file__).with_name("published_app.py")), str(port)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # a bench waits for a foreign server to listen; tests never do this
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the published app did not start")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def measure(url: str, *, auth: bool = True) -> LoadResult:
    headers = {"X-API-Key": KEY} if auth else {}
    return load(
        url,
        "/rollout",
        method="POST",
        body=body,
        headers=headers,
        concurrency=CONCURRENCY,
        warmup_s=1.0,
        duration_s=4.0,
    )


def main() -> None:
    python = ensure_published()
    runs: dict[str, list[LoadResult]] = {"synth-ai (this)": [], "bare Starlette": []}
    if python is not None:
        runs[PUBLISHED] = []
    env = {"ENVIRONMENT_API_KEY": KEY}
    for _ in range(ROUNDS):
        with server_process(ours, env) as url:
            runs["synth-ai (this)"].append(measure(url))
        with server_process(bare, env) as url:
            runs["bare Starlette"].append(measure(url, auth=False))
        if python is not None:
            with published_server(python) as url:
                runs[PUBLISHED].append(measure(url))
    with server_process(ours, env) as url:
        health = load(
            url, "/health", headers={"X-API-Key": KEY}, concurrency=64, warmup_s=1.0, duration_s=4.0
        )
    results = {name: median_run(rounds) for name, rounds in runs.items()}
    for name, result in results.items():
        assert result.errors == 0, f"{name}: {result.errors} errors"
    ours_rps = results["synth-ai (this)"].rps
    vs_bare = ours_rps / results["bare Starlette"].rps
    rows = "\n".join(
        f"| {name} | {r.rps:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} |"
        for name, r in results.items()
    )
    published_line = (
        f"**vs {PUBLISHED}: {ours_rps / results[PUBLISHED].rps:.2f}x** (goal >= 2x: "
        f"{'meets' if ours_rps / results[PUBLISHED].rps >= 2 else 'misses'})."
        if PUBLISHED in results
        else f"{PUBLISHED} could not be installed on this machine."
    )
    record(
        "framework overhead",
        f"""
POST /rollout with a trivial executor, each server in its own process under the same uvicorn
settings, {CONCURRENCY} keep-alive clients; median of {ROUNDS} alternating rounds.

| server | requests/s | p50 ms | p99 ms |
|---|---|---|---|
{rows}

**vs bare Starlette: {vs_bare:.2f}x** (goal >= 0.85x: {"meets" if vs_bare >= 0.85 else "misses"}).
{published_line}

GET /health under 64 connections: {health.rps:.0f} requests/s, p99 {health.percentile(99):.1f} ms.
""",
    )
    print(
        f"vs bare {vs_bare:.2f}x; " + ", ".join(f"{n}: {r.rps:.0f}/s" for n, r in results.items())
    )


if __name__ == "__main__":
    main()
