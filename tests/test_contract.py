"""Every request generation is accepted; every response carries the superset fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from synth_ai.task import (
    RolloutMetrics,
    RolloutRequest,
    RolloutStep,
    RolloutTrajectory,
    create_task_app,
)

from .conftest import InProcess, auth_headers, make_config

SUPERSET_FIELDS = {
    "run_id",
    "trace_correlation_id",
    "trajectories",
    "branches",
    "metrics",
    "aborted",
    "ops_executed",
    "trace",
    "inference_url",
    "pipeline_metadata",
}
METRIC_FIELDS = {
    "episode_returns",
    "mean_return",
    "num_steps",
    "num_episodes",
    "outcome_score",
    "events_score",
    "outcome_reward",
    "details",
}
POLICY = {"config": {"model": "m", "inference_url": "http://policy.local/v1?x=1"}}
GENERATIONS = {
    "legacy run_id + ops, no mode": {
        "run_id": "legacy-1",
        "env": {"env_name": "math", "seed": 3, "config": {}},
        "policy": {"policy_name": "p", **POLICY},
        "ops": ["agent", "env"],
    },
    "mode required, return_trace": {
        "run_id": "mid-1",
        "mode": "rl",
        "env": {"seed": 4},
        "policy": POLICY,
        "record": {"return_trace": True, "trace_format": "structured"},
        "ops": [{"op": "agent"}],
    },
    "trace_correlation_id only": {
        "trace_correlation_id": "new-1",
        "env": {"seed": 5},
        "policy": POLICY,
        "some_future_field": {"kept": True},
    },
}


@pytest.mark.parametrize("body", GENERATIONS.values(), ids=GENERATIONS.keys())
def test_each_generation_is_accepted_and_answered_with_the_superset(body: dict) -> None:
    client = InProcess(create_task_app(make_config()))
    response = client.post("/rollout", json=body, headers=auth_headers())
    assert response.status_code == 200, response.text
    data = response.json()
    assert data.keys() >= SUPERSET_FIELDS
    assert data["metrics"].keys() >= METRIC_FIELDS
    cid = body.get("trace_correlation_id") or body["run_id"]
    assert data["trace_correlation_id"] == cid
    assert data["run_id"] == body.get("run_id", cid)
    assert data["pipeline_metadata"]["trace_correlation_id"] == cid
    assert data["pipeline_metadata"]["inference_url"].endswith(f"cid={cid}")
    for trajectory in data["trajectories"]:
        assert trajectory["trace_correlation_id"] == cid
        assert trajectory["inference_url"] == data["pipeline_metadata"]["inference_url"]
    seed = body["env"]["seed"]
    assert data["metrics"]["outcome_score"] == data["metrics"]["outcome_reward"] == float(seed)


def test_request_needs_one_of_the_two_ids() -> None:
    with pytest.raises(ValidationError, match="run_id or trace_correlation_id"):
        RolloutRequest.model_validate({"env": {"seed": 1}})
    request = RolloutRequest.model_validate({"trace_correlation_id": "abc", "zzz": 1})
    assert request.run_id == "abc"
    assert request.model_extra == {"zzz": 1}
    assert request.mode == "eval"


def test_metrics_carry_both_reward_names_as_floats() -> None:
    metrics = RolloutMetrics(outcome_reward=0.123456789)
    assert metrics.outcome_score == metrics.outcome_reward == 0.123456789
    assert metrics.episode_returns == [0.123456789]
    assert metrics.mean_return == 0.123456789
    from_returns = RolloutMetrics(episode_returns=[1.0, 0.5])
    assert from_returns.mean_return == from_returns.outcome_score == 0.75


def test_what_the_validators_fill_in_counts_as_set() -> None:
    """The validators write fields directly (see `WireModel`); what they fill in is recorded
    as set, as an assignment would, so `exclude_unset` dumps keep it."""
    metrics = RolloutMetrics(outcome_reward=0.5)
    filled = {"outcome_score", "outcome_reward", "mean_return", "episode_returns"}
    assert metrics.model_fields_set == filled
    assert metrics.model_dump(exclude_unset=True) == {
        "outcome_score": 0.5,
        "outcome_reward": 0.5,
        "mean_return": 0.5,
        "episode_returns": [0.5],
    }
    assert RolloutMetrics(mean_return=1.0, outcome_score=2.0).model_fields_set == {
        "mean_return",
        "outcome_score",
        "outcome_reward",
        "episode_returns",
    }
    request = RolloutRequest.model_validate({"run_id": "r"})
    assert request.model_dump(exclude_unset=True) == {"run_id": "r", "trace_correlation_id": "r"}
    request = RolloutRequest.model_validate({"trace_correlation_id": "c"})
    assert request.model_dump(exclude_unset=True) == {"run_id": "c", "trace_correlation_id": "c"}
    trajectory = RolloutTrajectory(env_id="e", policy_id="p", steps=[RolloutStep()])
    assert trajectory.length == 1
    assert trajectory.model_fields_set == {"env_id", "policy_id", "steps", "length"}
