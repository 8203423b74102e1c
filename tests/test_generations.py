"""Requests every published generation accepts: against a stand-in as strict as synth-ai
0.2.24's `/rollout` (it requires `run_id`, `env`, `policy`, `ops` and `mode`, and answers
FastAPI's list-shaped 422), the client, `eval` and `check` all get their rollouts through."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from synth_ai.cli import main
from synth_ai.task import TaskAppClient, TaskAppClientError, serve_in_background

from .conftest import KEY


class Generation024(BaseModel):
    """The required fields of 0.2.24's RolloutRequest."""

    run_id: str
    env: dict[str, Any]
    policy: dict[str, Any]
    ops: list[str] | list[dict[str, Any]]
    mode: str


async def rollout(request: Request) -> Response:
    try:
        body = Generation024.model_validate(await request.json())
    except ValidationError as exc:
        detail = [{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)
    return JSONResponse(
        {
            "run_id": body.run_id,
            "trajectories": [{"env_id": "e", "policy_id": "p", "steps": [], "length": 0}],
            "metrics": {"episode_returns": [1.0], "mean_return": 1.0, "num_steps": 1},
        }
    )


async def health(request: Request) -> Response:
    return JSONResponse({"healthy": True})


async def task_info(request: Request) -> Response:
    if "seed" in request.query_params:
        return JSONResponse({"task": {"id": "t", "name": "t"}, "environment": "t"})
    return JSONResponse({"taskset": {"name": "legacy"}})


@pytest.fixture(scope="module")
def strict_app() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/rollout", rollout, methods=["POST"]),
            Route("/health", health),
            Route("/task_info", task_info),
        ]
    )
    with serve_in_background(app) as url:
        yield url


def test_the_clients_dict_form_reaches_a_strict_older_app(strict_app: str) -> None:
    async def call() -> Any:
        async with TaskAppClient(strict_app, KEY) as client:
            return await client.rollout({"run_id": "r1", "env": {"seed": 1}})

    answer = asyncio.run(call())
    assert answer.metrics.mean_return == 1.0


def test_a_list_shaped_422_names_the_field(strict_app: str) -> None:
    async def call() -> None:
        async with TaskAppClient(strict_app, KEY) as client:
            await client.request("POST", "/rollout", json={"env": {}, "policy": {}})

    with pytest.raises(TaskAppClientError) as info:
        asyncio.run(call())
    assert info.value.status == 422
    assert "body.run_id: Field required" in info.value.message
    assert "body.ops: Field required" in info.value.message


EVAL = ["eval", "--seeds", "0-4"]


def test_eval_scores_every_seed_of_a_strict_older_app(strict_app: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [*EVAL, strict_app, "--out", str(tmp_path / "r.jsonl"), "--jobs-db", str(tmp_path / "j")],
    )
    assert result.exit_code == 0, result.output
    assert "5 of 5" in result.output
