"""Optimizing against a task app that is not built on this framework (plain Starlette, its own
prompt and grading, only the wire contract), and the run's limits: the rollout budget is a cap,
a token limit stops the run with its best so far."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from synth_ai.examples.math_task_app.problems import generate_problem
from synth_ai.task import serve_in_background

from .conftest import KEY
from .processes import free_port, start_server, stop_server
from .test_optimize_e2e import config_text

SYSTEM = "Answer with the math_submit tool."
TOOL = {
    "type": "function",
    "function": {
        "name": "math_submit",
        "parameters": {"type": "object", "properties": {"answer": {"type": "string"}}},
    },
}


def plain_app(calls: list[int]) -> Starlette:
    """A task app written against the wire contract only: it calls the inference URL it is
    given with its own prompt, and grades the tool call itself."""

    def authorized(request: Request) -> bool:
        return request.headers.get("x-api-key") == KEY

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"healthy": True} if authorized(request) else {}, 200)

    async def task_info(request: Request) -> JSONResponse:
        return JSONResponse({"task": {"id": "plain-math", "name": "Plain math"}})

    async def rollout(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"detail": {"error": {"code": "unauthorized"}}}, 401)
        calls.append(1)
        body = await request.json()
        problem = generate_problem(int(body["env"]["seed"]), "train")
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Problem: {problem.text}"},
        ]
        payload = {
            "model": body["policy"]["config"]["model"],
            "messages": messages,
            "tools": [TOOL],
        }
        async with httpx.AsyncClient() as client:
            answer = (
                await client.post(body["policy"]["config"]["inference_url"], json=payload)
            ).json()
        message = answer["choices"][0]["message"]
        submitted = ""
        for call in message.get("tool_calls") or []:
            submitted = json.loads(call["function"]["arguments"]).get("answer", "")
        correct = submitted.strip() == str(problem.answer)
        reward = 1.0 if correct else 0.0
        return JSONResponse(
            {
                "run_id": body["run_id"],
                "trajectories": [],
                "metrics": {
                    "episode_returns": [reward],
                    "mean_return": reward,
                    "num_steps": 1,
                    "outcome_score": reward,
                    "details": {"correct": correct, "kind": problem.kind, "submitted": submitted},
                },
            }
        )

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/task_info", task_info),
            Route("/rollout", rollout, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def policy() -> Iterator[str]:
    process, url, output = start_server(["policy", "serve", "--offline"])
    yield url
    stop_server(process, output)


def optimize(config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "synth_ai", "optimize", str(config), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
    )
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def test_an_app_not_built_on_the_framework_improves(policy: str, tmp_path: Path) -> None:
    calls: list[int] = []
    with serve_in_background(plain_app(calls)) as app:
        config = tmp_path / "optimize.toml"
        config.write_text(config_text(app, policy, system=SYSTEM, budget=30))
        code, report, err = optimize(config, "--jobs-db", str(tmp_path / "jobs.db"))
    assert code == 0, err
    assert report["best_score"]["test"] - report["seed_score"]["test"] >= 0.2, report
    assert report["rollouts"]["search"] <= 30  # the budget is a cap, not a target
    assert len(calls) == report["rollouts"]["total"]


def test_a_token_limit_stops_the_run_with_its_best_so_far(policy: str, tmp_path: Path) -> None:
    config = tmp_path / "optimize.toml"
    text = config_text("math", policy) + "\n[prompt_learning.gepa.token]\nmax_limit = 600\n"
    config.write_text(text)
    code, report, err = optimize(
        config, "--jobs-db", str(tmp_path / "jobs.db"), "--fail-under", "0.9"
    )
    assert code == 1, err  # the seed's test score is the best there is, and under 0.9
    assert "under 0.9" in err
    assert report["best_score"]["test"] < 0.9
    assert report["stop_reason"].startswith("token limit reached")
    assert report["rollouts"]["search"] < 60
    assert report["best_score"]["validation"] is not None
    assert "offline-prompt-sensitive" in report["tokens"]["unpriced_models"]  # said, not $0


def test_an_unreachable_reflection_model_is_reported_not_hidden(
    policy: str, tmp_path: Path
) -> None:
    config = tmp_path / "optimize.toml"
    dead = f"http://127.0.0.1:{free_port()}"
    text = config_text("math", policy, budget=30)
    config.write_text(
        text.replace(f'llm_inference_url = "{policy}/v1"', f'llm_inference_url = "{dead}/v1"')
    )
    code, report, err = optimize(config, "--jobs-db", str(tmp_path / "jobs.db"))
    assert code == 0, err
    assert report["reflection_failures"] > 0
    assert report["best_prompt"] == report["seed_prompt"]  # nothing was proposed
    assert report["rollouts"]["search"] <= 30


def test_prompt_template_delivery_improves_and_still_records(policy: str, tmp_path: Path) -> None:
    """The math app declares `supports_prompt_template`: the candidate goes in
    `policy.config.prompt_template` and the interceptor forwards the app's messages as sent, so
    a seed prompt the app would never send on its own is what it sends (in interceptor
    delivery the same config exits 3 at preflight)."""
    config = tmp_path / "optimize.toml"
    text = config_text("math", policy, system="Use the math_submit tool.", budget=40)
    delivery = 'task_app_url = "math"\ndelivery = "prompt_template"'
    config.write_text(text.replace('task_app_url = "math"', delivery))
    code, report, err = optimize(config, "--jobs-db", str(tmp_path / "jobs.db"))
    assert code == 0, err
    assert report["best_score"]["test"] - report["seed_score"]["test"] >= 0.2, report
    assert report["tokens"]["policy"]["prompt"] > 0  # recorded through the interceptor
    config.write_text(text)
    code, _, err = optimize(config, "--jobs-db", str(tmp_path / "jobs.db"))
    assert code == 3 and "message 0 (system)" in err


@pytest.mark.parametrize("dead", ["app", "policy"])
def test_an_unreachable_app_or_policy_exits_3_at_preflight(
    dead: str, policy: str, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "optimize.toml"
    if dead == "app":
        config.write_text(config_text(nowhere, policy))
    else:
        config.write_text(config_text("math", nowhere))
    code, report, err = optimize(config, "--jobs-db", str(tmp_path / "jobs.db"))
    assert code == 3, err
    assert ("/health check failed" if dead == "app" else "preflight rollout") in err
    assert report == {}
