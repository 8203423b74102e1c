"""`check` blames only what is wrong: the cid may come back in `trace_correlation_id` or, as
0.2.24's trainers read it, in the trajectories' `inference_url`; a 401 leaks the key only when
it shows a meaningful run of it (8 characters, or the prefix the app shows), never a common
word that shares 4 letters with it."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from synth_ai.offline_policy import create_offline_policy_app
from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.conformance import ConformanceReport, check_conformance
from synth_ai.task.probes import leaks

from .conftest import make_config
from .processes import free_port
from .published import published_python

ROOT = Path(__file__).resolve().parents[1]
WORDS = "authentication required unauthorised invalid key bearer token www-authenticate"


def statuses(report: ConformanceReport) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in report.checks}


@pytest.fixture(scope="module")
def policy_url() -> Iterator[str]:
    with serve_in_background(create_offline_policy_app()) as url:
        yield url


def test_an_app_whose_key_starts_with_auth_passes(
    monkeypatch: pytest.MonkeyPatch, policy_url: str
) -> None:
    key = f"auth{secrets.token_hex(12)}"
    monkeypatch.setenv("ENVIRONMENT_API_KEY", key)
    with serve_in_background(create_task_app(make_config())) as url:
        report = asyncio.run(check_conformance(url, key, inference_url=policy_url))
    assert statuses(report)["no_key_material_in_401"][0] == "pass", report.checks
    assert report.passed, report.failures


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=12, max_size=40))
def test_leaks_are_meaningful_runs_or_the_shown_prefix(key: str) -> None:
    start = len(key) // 3
    assert leaks(f"expected {key[start : start + 8]}!", key)
    assert leaks(f'{{"expected_prefix": "{key[:4]}..."}}', key)
    assert not leaks(f"{key[:4]} {key[4:8]} {key[-4:]}", key[:8] + "Z" * 8 + key[8:])
    assert not leaks(WORDS, "auth" + key) or any(
        ("auth" + key)[i : i + 8] in WORDS for i in range(len(key) - 3)
    )


def zero_two_twenty_four(
    carry_cid: bool, leak: bool = False, own_leak: bool = False, current: bool = False
) -> Starlette:
    """An app answering as 0.2.24's framework does: no `trace_correlation_id`, an empty
    `pipeline_metadata`, and each trajectory's `inference_url` (with the trainer's `cid`
    when `carry_cid`, as an app that passes the policy's URL along does). `leak`: the
    framework's `allowed_first15`; `own_leak`: the app's own code shows a part of the key;
    `current`: its `/info` names a current `contract_version`."""
    key = os.environ["ENVIRONMENT_API_KEY"]

    def allowed(request: Request) -> bool:
        return request.headers.get("x-api-key") == key

    async def root(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "old"})

    async def health(request: Request) -> Response:
        if not allowed(request):  # as 0.2.24 answers: 400, and (leak) the key's first 15
            got = [request.headers.get("x-api-key", "")[:15]]
            shown: dict[str, Any] = {"allowed_first15": [key[:15]], "got_first15": got}
            shown = shown if leak else {}
            if own_leak:
                shown["hint"] = f"the key ends {key[-8:]}"
            return JSONResponse({"detail": {"code": "unauthorised", **shown}}, status_code=400)
        return JSONResponse({"healthy": True})

    async def info(request: Request) -> Response:
        info = {"service": {}, "dataset": {}, "rubrics": None, "inference": {}, "limits": {}}
        if current:
            info["contract_version"] = "1"
        return JSONResponse(info)

    async def task_info(request: Request) -> Response:
        if request.query_params.get("seed") is None:
            return JSONResponse({"taskset": {"name": "old"}})
        return JSONResponse(
            {
                "task": {"id": "old", "name": "Old"},
                "environment": "old",
                "dataset": {},
                "rubric": {},
                "inference": {},
                "limits": {},
            }
        )

    async def rollout(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "bad json"}, status_code=422)
        url = body["policy"]["config"]["inference_url"]
        trajectory: dict[str, Any] = {
            "env_id": "old",
            "policy_id": "p",
            "steps": [{"obs": {}, "tool_calls": [], "reward": 1.0, "done": True}],
            "length": 1,
            "inference_url": url if carry_cid else "http://127.0.0.1/v1/chat/completions",
        }
        return JSONResponse(
            {
                "run_id": body["run_id"],
                "trajectories": [trajectory],
                "branches": {},
                "metrics": {
                    "episode_returns": [1.0],
                    "mean_return": 1.0,
                    "num_steps": 1,
                    "outcome_score": 1.0,
                },
                "trace_correlation_id": None,
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


def test_the_cid_may_come_back_in_the_trajectories_inference_url(
    api_key: str, policy_url: str
) -> None:
    with serve_in_background(zero_two_twenty_four(carry_cid=True)) as url:
        report = asyncio.run(check_conformance(url, api_key, inference_url=policy_url))
    found = statuses(report)
    for name in ("rollout_eval", "rollout_rl_cid_rules"):
        assert found[name][0] == "pass", found[name]
        assert "cid from the trajectories' inference_url (0.2.24)" in found[name][1]


def test_the_0_2_x_frameworks_own_key_prefix_is_a_warning_that_blames_the_framework(
    api_key: str, policy_url: str
) -> None:
    with serve_in_background(zero_two_twenty_four(carry_cid=True, leak=True)) as url:
        report = asyncio.run(check_conformance(url, api_key, inference_url=policy_url))
    assert report.passed and report.failures == [], report.checks
    (leak,) = [c for c in report.checks if c.name == "no_key_material_in_401"]
    assert (leak.status, leak.required) == ("fail", False)
    assert "(`allowed_first15`, `got_first15`: added by the synth-ai 0.2.x" in leak.detail
    assert statuses(report)["health_401_without_key"] == (
        "pass",
        "400 without a key (an older generation (0.2.x))",
    )


def test_a_key_leaked_by_an_older_apps_own_code_still_fails(api_key: str, policy_url: str) -> None:
    app = zero_two_twenty_four(carry_cid=True, leak=True, own_leak=True)
    with serve_in_background(app) as url:
        report = asyncio.run(check_conformance(url, api_key, inference_url=policy_url))
    assert report.failures == ["no_key_material_in_401"]
    assert statuses(report)["no_key_material_in_401"][1] == (
        "a 400 answer contains part of the valid key"
    )


def test_allowed_first15_from_a_current_generation_app_fails(api_key: str, policy_url: str) -> None:
    """Only an older generation's framework is excused: an app that says it speaks a
    current contract and shows the field wrote it itself."""
    app = zero_two_twenty_four(carry_cid=True, leak=True, current=True)
    with serve_in_background(app) as url:
        report = asyncio.run(check_conformance(url, api_key, inference_url=policy_url))
    found = statuses(report)
    assert found["no_key_material_in_401"] == (
        "fail",
        "a 400 answer contains part of the valid key",
    )
    assert "no_key_material_in_401" in report.failures


def test_a_cid_found_nowhere_is_still_blamed(api_key: str, policy_url: str) -> None:
    with serve_in_background(zero_two_twenty_four(carry_cid=False)) as url:
        report = asyncio.run(check_conformance(url, api_key, inference_url=policy_url))
    status, detail = statuses(report)["rollout_eval"]
    assert status == "fail"
    assert "trace_correlation_id is None and the trajectories' inference_url carry cid [None]" in (
        detail
    )


PUBLISHED_APP = """
import sys
import uvicorn
from synth_ai.task.contracts import (
    RolloutMetrics, RolloutResponse, RolloutStep, RolloutTrajectory, TaskDescriptor, TaskInfo,
)
from synth_ai.task.server import TaskAppConfig, create_task_app

BASE = TaskInfo(task=TaskDescriptor(id="old", name="Old"), environment="old", dataset={},
                rubric={}, inference={}, limits={})

async def rollout(request, fastapi_request):
    step = RolloutStep(obs={"seed": request.env.seed}, tool_calls=[], reward=1.0, done=True)
    trajectory = RolloutTrajectory(env_id="old", policy_id="p", steps=[step], length=1,
                                   inference_url=request.policy.config["inference_url"])
    metrics = RolloutMetrics(episode_returns=[1.0], mean_return=1.0, num_steps=1,
                             num_episodes=1, outcome_score=1.0)
    return RolloutResponse(run_id=request.run_id, trajectories=[trajectory], metrics=metrics)

config = TaskAppConfig(app_id="old", name="Old", description="0.2.24", base_task_info=BASE,
                       describe_taskset=lambda: {"name": "old"},
                       provide_task_instances=lambda seeds: [BASE for _ in seeds],
                       rollout=rollout)
uvicorn.run(create_task_app(config), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""


def wait_until_listening(url: str, process: subprocess.Popen[bytes]) -> None:
    """Its start-up, polled: 0.2.24 prints nothing when it listens. Between tries, wait on
    the process itself, so one that dies is reported at once."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/", timeout=1)
            return
        except httpx.TransportError:
            pass
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(process.stderr.read().decode() if process.stderr else "it exited")
    raise AssertionError(f"nothing listened at {url} within 120 s")


def test_check_passes_the_published_0_2_24_and_warns_of_its_frameworks_leak(
    api_key: str, policy_url: str, tmp_path: Path
) -> None:
    """A 0.2.24 app passes every check by its generation's contract (400 without a key, no
    contract_version, its own error bodies, the cid in the trajectories' inference_url); its
    framework's refusal carries the first 15 characters of the valid key (`allowed_first15`),
    a real leak that `check` shows as a warning blaming the framework, not the app."""
    python = published_python()
    app = tmp_path / "old_app.py"
    app.write_text(PUBLISHED_APP)
    port = free_port()
    process = subprocess.Popen(
        [str(python), str(app), str(port)],
        env={"ENVIRONMENT_API_KEY": api_key, "PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(url, process)
        report = asyncio.run(check_conformance(url, api_key, inference_url=policy_url))
    finally:
        process.terminate()
        process.wait(timeout=10)
    found = statuses(report)
    assert report.passed, found
    assert found["no_key_material_in_401"][0] == "fail"  # shown as a warning
    assert "`got_first15`: added by the synth-ai 0.2.x" in found["no_key_material_in_401"][1]
    assert "(0.2.24)" in found["rollout_rl_cid_rules"][1]
    assert "an older generation (0.2.x)" in found["info_shape"][1]
