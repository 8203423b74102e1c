"""The reference math app: deterministic problems, equivalence grading, the offline policy."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from fractions import Fraction
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from synth_ai.examples.math_task_app import (
    generate_problem,
    grade_answer,
    grade_completion,
    parse_answer,
)
from synth_ai.offline_policy import create_offline_policy_app, solve
from synth_ai.task import TaskAppClient, get_task_app, serve_in_background

from .conftest import KEY, InProcess

HEADERS = {"X-API-Key": KEY}


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def rollout_request(seed: int, policy_url: str, **policy: Any) -> dict[str, Any]:
    return {
        "trace_correlation_id": f"math-{seed}",
        "env": {"seed": seed, "config": {"split": "train"}},
        "policy": {"config": {"model": "offline-policy", "inference_url": policy_url, **policy}},
    }


async def mean_reward(app_url: str, policy_url: str, seeds: range) -> float:
    async with TaskAppClient(app_url, KEY) as client:
        responses = await asyncio.gather(
            *(client.rollout(rollout_request(seed, policy_url)) for seed in seeds)
        )
    return sum(r.metrics.outcome_score or 0.0 for r in responses) / len(responses)


@given(
    seed=st.integers(min_value=-(2**40), max_value=2**40), split=st.sampled_from(["train", "test"])
)
def test_same_seed_same_problem_and_the_offline_solver_reads_it(seed: int, split: str) -> None:
    problem = generate_problem(seed, split)
    assert generate_problem(seed, split) == problem
    assert solve(f"Problem: {problem.text}") == problem.answer


def test_problems_are_the_same_in_another_process() -> None:
    code = (
        "import json; from synth_ai.examples.math_task_app import generate_problem as g; "
        "print(json.dumps([g(s, sp).text for s in range(30) for sp in ('train', 'test')]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    here = [generate_problem(s, sp).text for s in range(30) for sp in ("train", "test")]
    assert json.loads(output) == here
    assert len({p.kind for p in map(generate_problem, range(30))}) == 3
    assert generate_problem(7, "train") != generate_problem(7, "test")


@pytest.mark.parametrize(
    "text",
    [
        "3/4",
        "0.75",
        "6/8",
        " 3 / 4 ",
        "\\frac{3}{4}",
        "$\\frac{3}{4}$",
        "\\boxed{3/4}",
        "$\\boxed{\\dfrac{3}{4}}$",
        "x = 0.75",
        "\\(0.75\\)",
        "0.750.",
    ],
)
def test_equivalent_answers_are_correct(text: str) -> None:
    grade = grade_answer(text, Fraction(3, 4))
    assert (grade.reward, grade.reason) == (1.0, "correct")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", Fraction(1234)),
        ("-\\frac{1}{2}", Fraction(-1, 2)),
        ("1 1/2", Fraction(3, 2)),
        ("\\boxed{-7}", Fraction(-7)),
        ("$$12$$", Fraction(12)),
        ("\u22123", Fraction(-3)),
    ],
)
def test_parse_answer(text: str, expected: Fraction) -> None:
    assert parse_answer(text) == expected


def test_rewards_for_wrong_blank_and_missing_tool_calls() -> None:
    assert grade_answer("0.7", Fraction(3, 4)).reward == 0.0
    assert grade_answer("many", Fraction(3, 4)).reason == "unparseable_answer"
    assert grade_answer("  ", Fraction(3, 4)).reward == -0.5

    def completion(message: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"message": message}]}

    def call(name: str, arguments: str) -> dict[str, Any]:
        return {"tool_calls": [{"function": {"name": name, "arguments": arguments}}]}

    assert grade_completion(completion({"content": "3/4"}), Fraction(3, 4)).reward == -1.0
    assert (
        grade_completion(completion(call("other", '{"answer": "3/4"}')), Fraction(3, 4)).reward
        == -1.0
    )
    assert grade_completion(completion(call("math_submit", "{oops")), Fraction(3, 4)).reward == -1.0
    assert (
        grade_completion(
            completion(call("math_submit", '{"answer": "6/8"}')), Fraction(3, 4)
        ).reward
        == 1.0
    )


def test_offline_policy_without_errors_scores_one(
    math_app_url: str, offline_policy_url: str
) -> None:
    assert asyncio.run(mean_reward(math_app_url, offline_policy_url, range(50))) == 1.0


def test_offline_policy_with_errors_scores_in_band(math_app_url: str) -> None:
    with serve_in_background(create_offline_policy_app(error_rate=0.3, seed=7)) as policy_url:
        score = asyncio.run(mean_reward(math_app_url, policy_url, range(50)))
    assert 0.5 <= score <= 0.9


def test_the_policy_gets_the_cid_the_template_and_never_the_answer(math_app: Starlette) -> None:
    policy_app = create_offline_policy_app()
    template = {"system": "Answer with the tool. \\boxed{} is fine.", "user": "Task: {problem}"}
    with serve_in_background(policy_app) as policy_url:
        response = InProcess(math_app).post(
            "/rollout",
            json=rollout_request(3, policy_url, prompt_template=template),
            headers=HEADERS,
        )
    assert response.status_code == 200
    seen = policy_app.state.policy.requests_seen[-1]
    assert seen.url.endswith("/v1/chat/completions?cid=math-3")
    problem = generate_problem(3)
    assert seen.body["messages"] == [
        {"role": "system", "content": template["system"]},
        {"role": "user", "content": f"Task: {problem.text}"},
    ]
    assert seen.body["tool_choice"] == {"type": "function", "function": {"name": "math_submit"}}
    assert "expected" not in json.dumps(seen.body)
    assert response.json()["metrics"]["outcome_score"] == 1.0


def test_task_info_describes_seeds_without_answers(math_app: Starlette) -> None:
    client = InProcess(math_app)
    one = client.get("/task_info?seed=4", headers=HEADERS).json()
    assert one["task_metadata"]["seed"] == 4
    assert one["observation"]["problem"] == generate_problem(4).text
    for required in ("task", "environment", "dataset", "rubric", "inference", "limits"):
        assert required in one
    assert not keys_of({k: v for k, v in one.items() if k != "action_space"}) & {
        "answer",
        "expected_answer",
        "solution",
    }
    many = client.get("/task_info?seed=1&seeds=2,3", headers=HEADERS).json()
    assert [info["task_metadata"]["seed"] for info in many] == [1, 2, 3]
    assert client.get("/task_info?seed=4", headers=HEADERS).json() == one
    taskset = client.get("/task_info", headers=HEADERS).json()["taskset"]
    assert taskset["dataset"]["splits"] == ["train", "test"]


def test_bad_prompt_template_and_split_are_422(
    math_app: Starlette, offline_policy_url: str
) -> None:
    client = InProcess(math_app)
    bad_template = rollout_request(1, offline_policy_url, prompt_template=42)
    response = client.post("/rollout", json=bad_template, headers=HEADERS)
    assert response.status_code == 422
    bad_split = rollout_request(1, offline_policy_url)
    bad_split["env"]["config"]["split"] = "validation"
    response = client.post("/rollout", json=bad_split, headers=HEADERS)
    assert response.status_code == 422
    assert "validation" in response.json()["detail"]["error"]["message"]


def test_an_unreachable_or_failing_policy_is_an_infrastructure_error(math_app: Starlette) -> None:
    async def failing(request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"error": "boom"}, status_code=503)

    from starlette.routing import Route

    broken = Starlette(routes=[Route("/v1/chat/completions", failing, methods=["POST"])])
    with serve_in_background(broken) as broken_url:
        pass  # stopped: its port now refuses connections
    with serve_in_background(broken) as failing_url:
        client = InProcess(math_app)
        for url, kind in (
            (broken_url, "inference_unreachable"),
            (failing_url, "inference_http_error"),
        ):
            request = rollout_request(1, url.replace("://", "://user:pw@") + "/v1?token=t0k")
            data = client.post("/rollout", json=request, headers=HEADERS).json()
            assert data["aborted"] is True
            error = data["metrics"]["details"]["infra_error"]
            assert error["kind"] == kind
            assert f"inference endpoint {url}/v1/chat/completions " in error["message"]
            assert "pw" not in error["message"] and "t0k" not in error["message"]


def test_registered_by_id_alias_and_entry_point() -> None:
    assert get_task_app("math").app_id == "math"
    assert get_task_app("math-single-step").app_id == "math"
    with pytest.raises(KeyError, match="known: "):
        get_task_app("no-such-app")
    from importlib.metadata import entry_points

    assert "math" in {point.name for point in entry_points(group="synth_ai.task_apps")}


def test_policy_server_rejects_bad_bodies() -> None:
    client = InProcess(create_offline_policy_app())
    assert client.post("/v1/chat/completions", content=b"nope").status_code == 400
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 400
    plain = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "What is 2 * 21?"}]}
    ).json()
    assert plain["choices"][0]["message"]["content"] == "\\boxed{42}"
    assert client.get("/v1/models").status_code == httpx.codes.OK


BAD_LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", '"abc"', "true", "[]", "{}", "-1", "0"]


def post_with(app_url: str, policy_url: str, section: str, key: str, literal: str) -> Any:
    """POST raw JSON bytes whose `section.config.key` is `literal` (JSON allows NaN there)."""
    configs = {"policy": f'"model": "offline-policy", "inference_url": "{policy_url}"', "env": ""}
    configs[section] += (", " if configs[section] else "") + f'"{key}": {literal}'
    env, policy = "{" + configs["env"] + "}", "{" + configs["policy"] + "}"
    body = f'{{"run_id": "bad", "env": {{"config": {env}}}, "policy": {{"config": {policy}}}}}'
    return httpx.post(
        f"{app_url}/rollout",
        content=body.encode(),
        headers={**HEADERS, "content-type": "application/json"},
        timeout=30,
    )


@settings(max_examples=80, deadline=None)
@given(
    where=st.sampled_from(
        [
            ("policy", "timeout_s"),
            ("policy", "temperature"),
            ("policy", "max_tokens"),
            ("policy", "api_key"),
            ("policy", "prompt_template"),
            ("env", "seed"),
            ("env", "split"),
        ]
    ),
    literal=st.one_of(
        st.sampled_from(BAD_LITERALS),
        st.integers(20, 4000).map(lambda n: '"' + "9" * n + '"'),
        st.integers(20, 4000).map(lambda n: "9" * n),
    ),
)
def test_bad_values_in_the_configs_the_math_app_reads_are_4xx_not_500(
    math_app_url: str, offline_policy_url: str, where: tuple[str, str], literal: str
) -> None:
    response = post_with(math_app_url, offline_policy_url, *where, literal)
    # a few of these are fine values for some keys (-1 is a seed, 0 a temperature)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["detail"]["error"]["code"] in ("invalid_request", "invalid_json")


@pytest.mark.parametrize(
    ("section", "key", "literal"),
    [
        ("policy", "timeout_s", '"abc"'),
        ("policy", "timeout_s", "Infinity"),
        ("policy", "temperature", '"hot"'),
        ("env", "seed", "Infinity"),
        ("env", "seed", "1e400"),
        ("env", "seed", '"9223372036854775808"'),
    ],
)
def test_known_bad_inputs_are_422(
    math_app_url: str, offline_policy_url: str, section: str, key: str, literal: str
) -> None:
    response = post_with(math_app_url, offline_policy_url, section, key, literal)
    assert response.status_code == 422, response.text
    loc = response.json()["detail"]["error"]["errors"][0]["loc"]
    assert loc[-1] == key or (section == "env" and loc[-1] == "env")
