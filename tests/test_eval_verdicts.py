"""`synth-ai eval` verdicts a CI can gate on: task errors are not retried and fail the run,
exit codes say what happened, and Ctrl-C ends a run (local or on a jobs server) cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.eval import read_results
from synth_ai.task import (
    RolloutMetrics,
    RolloutResponse,
    RolloutTrajectory,
    create_task_app,
    serve_in_background,
)
from synth_ai.task.outcome import NO_POLICY, bounded_details

from .conftest import KEY, echo_rollout, make_config
from .processes import start_server, stop_server


def serve(rollout: Any, **overrides: Any) -> Any:
    return serve_in_background(create_task_app(make_config(rollout=rollout, **overrides)))


def run_eval(url: str, tmp_path: Path, *args: str) -> Any:
    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(
        main,
        ["eval", url, "--out", str(out), "--jobs-db", str(tmp_path / "jobs.db"), *args],
    )
    return result, out


def test_an_executor_that_raises_is_a_task_error_never_retried(tmp_path: Path) -> None:
    calls: list[int] = []

    def broken(request: Any, context: Any) -> Any:
        calls.append(request.env.seed)
        raise RuntimeError("the environment fell over")

    with serve(broken) as url:
        result, out = run_eval(url, tmp_path, "--seeds", "0-9")
    assert result.exit_code == 1, result.output
    assert sorted(calls) == list(range(10))  # each seed once: never retried
    results = read_results(out)
    assert {r.status for r in results} == {"error"} and len(results) == 10
    assert result.output.count("the environment fell over") == 1  # shown once, with its count
    assert "x10" in result.output
    assert "10 of 10 seeds failed" in result.output


def test_thresholds_decide_the_exit_code(tmp_path: Path) -> None:
    def half_broken(request: Any, context: Any) -> Any:
        if request.env.seed % 2:
            raise RuntimeError("odd seed")
        return echo_rollout(request, context)

    with serve(half_broken) as url:
        strict, _ = run_eval(url, tmp_path, "--seeds", "0-9")
        tolerant, _ = run_eval(url, tmp_path, "--seeds", "0-9", "--max-error-rate", "0.5")
        demanding, _ = run_eval(
            url, tmp_path, "--seeds", "0-9", "--max-error-rate", "0.5", "--fail-under", "100"
        )
    assert strict.exit_code == 1
    assert tolerant.exit_code == 0, tolerant.output
    assert demanding.exit_code == 1 and "< --fail-under 100" in demanding.output


def test_an_app_that_calls_a_policy_is_refused_without_one(
    math_app_url: str, tmp_path: Path
) -> None:
    result, _ = run_eval(math_app_url, tmp_path, "--seeds", "0-2")
    assert result.exit_code == 3
    assert NO_POLICY in result.output and "Traceback" not in result.output


def test_unreachable_app_exits_3(tmp_path: Path) -> None:
    from .processes import free_port

    result, _ = run_eval(f"http://127.0.0.1:{free_port()}", tmp_path, "--seeds", "0")
    assert result.exit_code == 3 and "/health check failed" in result.output


def test_results_keep_every_detail_and_success_is_what_the_app_says(tmp_path: Path) -> None:
    def detailed(request: Any, context: Any) -> Any:
        seed = request.env.seed
        return RolloutResponse(
            run_id=request.run_id,
            trajectories=[RolloutTrajectory(env_id="e", policy_id="p", steps=[])],
            metrics=RolloutMetrics(
                outcome_score=1.0,
                details={"success": seed == 0, "turns": 3, "notes": "x" * 100_000},
            ),
        )

    with serve(detailed) as url:
        result, out = run_eval(url, tmp_path, "--seeds", "0-1")
    assert result.exit_code == 0, result.output
    by_seed = {r.seed: r for r in read_results(out)}
    assert by_seed[0].success and not by_seed[1].success  # details.success, not the reward
    assert set(by_seed[0].details) == {"success", "turns", "notes"}
    assert len(str(by_seed[0].details)) < 8_000  # bounded


def test_bounded_details_keep_small_values_whole() -> None:
    details = {"a": 1, "b": [1, 2], "c": {"d": "e"}}
    assert bounded_details(details) == details


@pytest.fixture
def stuck_app() -> Iterator[str]:
    release = threading.Event()

    async def stuck(request: Any, context: Any) -> Any:
        import asyncio

        await asyncio.to_thread(release.wait, 60)
        return echo_rollout(request, context)

    with serve(stuck) as url:
        try:
            yield url
        finally:
            release.set()


EVAL = [sys.executable, "-m", "synth_ai", "eval", "--seeds", "0-3"]


def interrupt_after(process: subprocess.Popen[str], marker: str) -> str:
    """SIGINT once `marker` is printed; answers everything printed."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            process.send_signal(signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=60)
    return "".join(seen) + rest


def test_ctrl_c_ends_a_local_eval_cleanly(stuck_app: str, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*EVAL, stuck_app, "--jobs-db", str(tmp_path / "jobs.db"), "--out", str(tmp_path / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
    )
    output = interrupt_after(process, "events in")
    assert process.returncode == 130, output
    assert "Traceback" not in output and "CancelledError" not in output


def test_ctrl_c_cancels_the_job_on_a_jobs_server(stuck_app: str, tmp_path: Path) -> None:
    server, jobs_url, server_output = start_server(
        ["jobs", "serve", "--db", str(tmp_path / "jobs.db")]
    )
    try:
        process = subprocess.Popen(
            [*EVAL, stuck_app, "--jobs-server", jobs_url, "--out", str(tmp_path / "r.jsonl")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
        )
        output = interrupt_after(process, f"on {jobs_url}")
        assert process.returncode == 130, output
        assert "Traceback" not in output
        jobs = httpx.get(f"{jobs_url}/api/jobs", headers={"X-API-Key": KEY}).json()["jobs"]
        assert [job["state"] for job in jobs] == ["canceled"]  # ended before the CLI exited
    finally:
        stop_server(server, server_output)
