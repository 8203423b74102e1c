"""The `prompt_learning` job kind on a jobs server: hostile configs get a clear 422, never a 500;
the task app's key is never stored; a job runs to a summary like `eval` does."""

from __future__ import annotations

import asyncio
import copy
import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.optimize import PromptLearningJobKind
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY
from .test_optimize_e2e import config_text


@pytest.fixture(scope="module")
def jobs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_jobs_app(
        tmp_path_factory.mktemp("jobs") / "jobs.db",
        settings=StreamSettings(end_grace_s=0.05),
        kinds={"prompt_learning": PromptLearningJobKind()},
    )
    with serve_in_background(app) as url:
        yield url


def job_config(app: str = "http://127.0.0.1:9", policy: str = "http://127.0.0.1:9") -> Any:
    return tomllib.loads(config_text(app, policy))


def create(jobs_url: str, config: Any) -> httpx.Response:
    return httpx.post(
        f"{jobs_url}/api/jobs",
        json={"kind": "prompt_learning", "config": config},
        headers={"X-API-Key": KEY},
        timeout=30,
    )


PATHS = [
    ("prompt_learning", "gepa", "rollout", "budget"),
    ("prompt_learning", "gepa", "evaluation", "seeds"),
    ("prompt_learning", "initial_prompt", "messages"),
    ("prompt_learning", "initial_prompt", "wildcards"),
    ("prompt_learning", "policy", "inference_url"),
    ("prompt_learning", "task_app_url"),
    ("prompt_learning", "algorithm"),
    ("resume_from",),
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(PATHS), value=JSON_VALUES)
def test_hostile_configs_get_a_clear_400(jobs_url: str, path: tuple[str, ...], value: Any) -> None:
    config = copy.deepcopy(job_config())
    target = config
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    answer = create(jobs_url, config)
    if answer.status_code == 201:  # some values are legal; the job then fails its preflight
        return
    assert answer.status_code == 422, answer.text
    error = answer.json()["detail"]["error"]
    assert error["code"] and error["message"]


def test_an_app_reference_is_refused_on_a_server(jobs_url: str) -> None:
    config = job_config()
    config["prompt_learning"]["task_app_url"] = "math"
    answer = create(jobs_url, config)
    assert answer.status_code == 422
    assert "http(s) URL" in answer.text


def test_a_mismatched_prompt_is_refused_before_a_job(jobs_url: str) -> None:
    config = job_config()
    config["prompt_learning"]["initial_prompt"]["messages"][1]["pattern"] = "{problem}{problem}"
    answer = create(jobs_url, config)
    assert answer.status_code == 422 and "touch" in answer.text


def test_a_job_runs_to_its_summary_and_never_stores_the_key(
    jobs_url: str, math_app_url: str, offline_policy_url: str
) -> None:
    config = job_config(math_app_url, offline_policy_url.removesuffix("/v1"))
    config["prompt_learning"]["task_app_api_key"] = KEY

    async def scenario() -> dict[str, Any]:
        async with TaskAppClient(jobs_url, KEY) as client:
            job = await client.create_job("prompt_learning", config)
            assert KEY not in str(job)
            async for event in client.stream_job(job["job_id"]):
                if event.state is not None and event.state.terminal:
                    assert event.data.get("summary"), event.data
                    return dict(event.data["summary"])
        raise AssertionError("the stream ended without a final status")

    summary = asyncio.run(scenario())
    assert summary["best_score"]["test"] - summary["seed_score"]["test"] >= 0.2
    assert summary["rollouts"]["search"] <= config["prompt_learning"]["gepa"]["rollout"]["budget"]
    assert math.isfinite(summary["best_score"]["validation"])
    assert KEY not in str(summary)


def test_the_kind_stores_configs_without_the_key(tmp_path: Path) -> None:
    config = job_config()
    config["prompt_learning"]["task_app_api_key"] = KEY
    stored, runtime = PromptLearningJobKind().prepare(config)
    assert "task_app_api_key" not in stored["prompt_learning"]
    assert runtime.prompt_learning.task_app_api_key == KEY
