"""`synth-ai optimize` end to end on real processes: the math app, the offline stand-ins (policy
and reflection; labelled fakes, no LLM here) and a jobs server, each its own process."""

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

from .conftest import KEY
from .processes import start_server, stop_server

SYSTEM = (
    "You are a careful mathematician. Solve the problem, then call the math_submit tool with "
    "only the final answer: an integer, or a fraction in lowest terms."
)
BUDGET = 60
TEST_POOL = list(range(20, 32))
EVENTS_IN_ORDER = [
    "prompt.learning.gepa.start",
    "prompt.learning.validation.scored",
    "prompt.learning.gepa.new_best",
    "prompt.learning.proposal.scored",
    "prompt.learning.best.prompt",
    "prompt.learning.final.results",
    "prompt.learning.gepa.complete",
]


def config_text(app: str, policy: str, *, system: str = SYSTEM, budget: int = BUDGET) -> str:
    return f"""
[prompt_learning]
algorithm = "gepa"
task_app_url = "{app}"

[prompt_learning.initial_prompt]
messages = [
  {{ role = "system", pattern = {json.dumps(system)}, order = 0 }},
  {{ role = "user", pattern = "Problem: {{problem}}", order = 1 }},
]
wildcards = {{ problem = "REQUIRED" }}

[prompt_learning.policy]
model = "offline-prompt-sensitive"
provider = "openai"
inference_url = "{policy}/v1"

[prompt_learning.gepa.rollout]
budget = {budget}
max_concurrent = 8
minibatch_size = 4

[prompt_learning.gepa.evaluation]
seeds = {list(range(10))}
validation_seeds = {list(range(10, 18))}
test_pool = {TEST_POOL}

[prompt_learning.gepa.mutation]
llm_model = "offline-reflection"
llm_inference_url = "{policy}/v1"
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    db = str(tmp_path_factory.mktemp("jobs") / "jobs.db")
    traces = tmp_path_factory.mktemp("traces")
    started = [
        start_server(["policy", "serve", "--offline"], env=env),
        start_server(["serve", "math", "--trace", str(traces)], env=env),
        start_server(["jobs", "serve", "--db", db], env=env, ready="  event log:"),
    ]
    try:
        yield {
            "policy": started[0][1],
            "app": started[1][1],
            "app_log": started[1][2],
            "jobs": started[2][1],
            "logs": [output for _, _, output in started],
            "traces": traces / "synth_ai.db",
        }
    finally:
        for process, _, output in started:
            stop_server(process, output)


def rollouts_logged(log: list[str]) -> int:
    return sum("POST /rollout" in line for line in list(log))


def optimize(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synth_ai", "optimize", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
    )


def stream_events(jobs: str, job_id: str) -> list[dict[str, Any]]:
    """Every event of a finished job over SSE, from the first, in the order sent."""
    events = []
    headers = {"X-API-Key": KEY}
    with httpx.stream(
        "GET", f"{jobs}/api/jobs/{job_id}/stream?since_id=0", headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data:"):
                sent = json.loads(line[5:])
                if sent.get("type"):  # the closing `end` frame has none
                    events.append(sent)
    return events


def test_the_best_prompt_beats_the_seed_on_the_test_pool(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "optimize.toml"
    config.write_text(config_text(servers["app"], servers["policy"]))
    before = rollouts_logged(servers["app_log"])
    result = optimize([str(config), "--jobs-url", servers["jobs"], "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    seed, best = report["seed_score"], report["best_score"]
    assert best["test"] - seed["test"] >= 0.2, report
    assert "exact fraction" in json.dumps(report["best_prompt"]).lower()

    made = rollouts_logged(servers["app_log"]) - before
    assert made == report["rollouts"]["total"]
    assert report["rollouts"]["search"] <= BUDGET
    assert made <= BUDGET + 2 * len(TEST_POOL)
    assert report["tokens"]["policy"]["prompt"] > 0 and report["tokens"]["reflection"]["prompt"] > 0
    assert KEY not in result.stdout + result.stderr

    events = stream_events(servers["jobs"], report["job_id"])
    types = [event["type"] for event in events]
    positions = [types.index(name) for name in EVENTS_IN_ORDER]
    assert positions == sorted(positions), types
    assert types[-1] == "job.status"
    progress = [e for e in events if e["type"] == "prompt.learning.progress"][-1]
    assert progress["rollouts_total"] == BUDGET
    assert 0 < progress["rollouts_completed"] <= BUDGET
    assert {"percent_rollouts", "elapsed_seconds", "eta_seconds", "tokens_used"} <= set(progress)
    baseline = next(e for e in events if e["type"] == "prompt.learning.validation.scored")
    assert baseline["is_baseline"] and len(baseline["instance_scores"]) == 8
    best_prompt = next(e for e in events if e["type"] == "prompt.learning.best.prompt")
    assert best_prompt["best_prompt"]["sections"][0]["role"] == "system"
    metrics = {(e["name"], e["step"]) for e in events if e["type"] == "prompt.learning.metric"}
    assert {("best_validation_score", 0), ("mean_validation_score", 0)} <= metrics
    assert max(step for _, step in metrics) >= 1  # one pair per iteration
    final = next(e for e in events if e["type"] == "prompt.learning.final.results")
    assert len(final["attempted_candidates"]) >= len(final["optimized_candidates"]) >= 2
    for event in events:
        assert KEY not in json.dumps(event)
    assert not any(KEY in line for log in servers["logs"] for line in list(log))
    artifacts = f"{servers['jobs']}/api/jobs/{report['job_id']}/artifacts"
    for name in ("best_prompt.json", "candidates.json", "run_state.json"):
        answer = httpx.get(f"{artifacts}/{name}", headers={"X-API-Key": KEY})
        assert answer.status_code == 200 and KEY not in answer.text

    # each rollout's trace names the candidate it scored
    candidates = httpx.get(f"{artifacts}/candidates.json", headers={"X-API-Key": KEY}).json()
    known = {c["id"] for c in candidates["candidates"]}
    (seed_entry,) = [c for c in candidates["candidates"] if c.get("baseline")]
    assert seed_entry["parent"] is None and seed_entry["accepted"]
    for entry in candidates["candidates"]:
        assert entry is seed_entry or entry["parent"] in known
        if entry["accepted"]:
            assert len(entry["validation"]) == 8
    assert sum(c["accepted"] for c in candidates["candidates"]) >= 2  # the seed and a better one
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "synth_ai",
            "traces",
            "list",
            "--db",
            str(servers["traces"]),
            "--json",
            "--limit",
            "10000",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sessions = json.loads(listed.stdout)["sessions"]
    mine = [s for s in sessions if s["metadata"]["run_id"] in known]
    assert len(mine) == made  # every rollout of this run, each under a candidate it tried
    assert all(s["session_id"].startswith(f"pl-{s['metadata']['run_id']}-") for s in sessions)


def test_a_prompt_the_app_does_not_send_exits_3_after_one_preflight_rollout(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "optimize.toml"
    config.write_text(config_text(servers["app"], servers["policy"], system="Be brief."))
    before = rollouts_logged(servers["app_log"])
    result = optimize([str(config), "--jobs-db", str(tmp_path / "jobs.db")], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "message 0 (system)" in result.stderr
    assert rollouts_logged(servers["app_log"]) - before == 1
