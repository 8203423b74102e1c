"""`synth-ai check`: passes on the math app, names each broken rule of a broken app."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from synth_ai.cli import main
from synth_ai.task import serve_in_background
from synth_ai.task.conformance import check_conformance
from synth_ai.task.probes import PROBES

from .conftest import KEY

counter = itertools.count()


def broken_app(
    *, leaks_key: bool, open_health: bool, failing_rollout: bool, reward: float | None = None
) -> Starlette:
    """A third-party-style app breaking chosen rules; its errors are not in the envelope, and
    its rollout answers carry `outcome_reward` only when `reward` is given."""

    def authorised(request: Request) -> bool:
        return request.headers.get("x-api-key") == KEY

    async def root(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def health(request: Request) -> Response:
        if not authorised(request) and not open_health:
            body = {"error": f"expected key {KEY}" if leaks_key else "unauthorised"}
            return JSONResponse(body, status_code=401)
        return JSONResponse({"healthy": True})

    async def info(request: Request) -> Response:
        return JSONResponse({"service": {}, "dataset": {}, "inference": {}, "limits": {}})

    async def task_info(request: Request) -> Response:
        seed = request.query_params.get("seed")
        if seed is None:
            return JSONResponse({"taskset": {"name": "broken"}})
        return JSONResponse(
            {
                "task": {"id": "b", "name": "B"},
                "environment": "b",
                "dataset": {},
                "rubric": {},
                "inference": {},
                "limits": {},
                "task_metadata": {"nonce": next(counter)},
            }
        )

    async def rollout(request: Request) -> Response:
        if failing_rollout:
            return JSONResponse({"detail": "boom"}, status_code=500)
        body = await request.json()
        return JSONResponse(
            {
                "run_id": body["run_id"],
                "trace_correlation_id": body["trace_correlation_id"],
                "trajectories": [{"env_id": "b", "policy_id": "p", "steps": [{"info": {}}]}],
                "metrics": {"outcome_score": 0.5}
                | ({} if reward is None else {"outcome_reward": reward}),
                "pipeline_metadata": {},
            }
        )

    return Starlette(
        routes=[
            Route("/", root),
            Route("/health", health),
            Route("/info", info),
            Route("/task_info", task_info),
            Route("/rollout", rollout, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def broken_urls() -> Iterator[tuple[str, str]]:
    first = broken_app(leaks_key=True, open_health=False, failing_rollout=False)
    second = broken_app(leaks_key=False, open_health=True, failing_rollout=True, reward=0.25)
    with serve_in_background(first) as one, serve_in_background(second) as two:
        yield one, two


def test_the_math_app_passes_every_check(math_app_url: str, offline_policy_url: str) -> None:
    report = asyncio.run(check_conformance(math_app_url, KEY, inference_url=offline_policy_url))
    assert report.passed, report.to_dict()
    assert [c.name for c in report.checks] == [name for name, _ in PROBES]
    assert all(c.status == "pass" and c.latency_ms is not None for c in report.checks)


def test_a_broken_app_is_reported_rule_by_rule(
    broken_urls: tuple[str, str], offline_policy_url: str
) -> None:
    first, second = broken_urls
    one = asyncio.run(check_conformance(first, KEY, inference_url=offline_policy_url))
    assert set(one.failures) == {
        "no_key_material_in_401",
        "info_shape",
        "task_info_deterministic",
        "rollout_rl_cid_rules",
        "rollout_malformed_json_4xx",
        "unknown_route_404",
    }
    assert one.skipped == ["rollout_reward_names_agree"]  # outcome_score only: older generation
    details = {c.name: c.detail for c in one.checks}
    assert "contract_version" in details["info_shape"]
    assert "pipeline_metadata" in details["rollout_rl_cid_rules"]
    two = asyncio.run(check_conformance(second, KEY, inference_url=offline_policy_url))
    assert {"health_401_without_key", "rollout_eval", "rollout_rl_cid_rules"} <= set(two.failures)
    assert "500" in {c.name: c.detail for c in two.checks}["rollout_eval"]
    # an open /health never answers 401: there is no 401 to look into, so not a pass
    assert "no_key_material_in_401" in two.skipped


def test_the_command_exit_codes_and_json(math_app_url: str, broken_urls: tuple[str, str]) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["check", math_app_url, "--api-key", KEY, "--offline-policy"])
    assert ok.exit_code == 0 and "all required checks passed" in ok.output
    bad = runner.invoke(
        main, ["check", broken_urls[0], "--api-key", KEY, "--offline-policy", "--json"]
    )
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["passed"] is False
    no_policy = runner.invoke(main, ["check", math_app_url, "--api-key", KEY, "--json"])
    assert no_policy.exit_code == 1
    details = {c["name"]: c["detail"] for c in json.loads(no_policy.stdout)["checks"]}
    assert "--inference-url or --offline-policy" in details["rollout_eval"]
