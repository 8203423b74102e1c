"""Stopping an optimization: kill -9 then `--resume JOB_ID` spends no budget twice; a cancel
through the jobs API stores the best so far.

The app is the math app behind a gate: after N rollouts it holds every further rollout while
the gate file exists and marks that it is holding, so the test acts at a known point (no
sleeps as synchronisation).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import KEY
from .processes import start_server, stop_server
from .test_optimize_e2e import BUDGET, TEST_POOL, config_text, rollouts_logged

GATED_APP = """
import asyncio, os
from dataclasses import replace
from pathlib import Path

from synth_ai.examples.math_task_app.app import build_config, rollout as math_rollout

GATE, MARK = Path(os.environ["GATE_FILE"]), Path(os.environ["MARK_FILE"])
AFTER = int(os.environ["GATE_AFTER"])
seen = 0


async def rollout(request, context):
    global seen
    seen += 1
    if seen > AFTER and GATE.exists():
        MARK.touch()
        while GATE.exists():
            await asyncio.sleep(0.02)
    return await math_rollout(request, context)


CONFIG = replace(build_config(), app_id="gated-math", rollout=rollout)
"""


def wait_for(path: Path, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited early: {process.communicate()}")
        time.sleep(0.02)


def gated_app(tmp_path: Path, after: int) -> tuple[Any, str, list[str], Path, Path]:
    (tmp_path / "gated_app.py").write_text(GATED_APP)
    gate, mark = tmp_path / "gate", tmp_path / "holding"
    gate.touch()
    env = {
        **os.environ,
        "ENVIRONMENT_API_KEY": KEY,
        "GATE_FILE": str(gate),
        "MARK_FILE": str(mark),
        "GATE_AFTER": str(after),
    }
    process, url, output = start_server(["serve", f"{tmp_path / 'gated_app.py'}:CONFIG"], env=env)
    return process, url, output, gate, mark


@pytest.fixture(scope="module")
def policy() -> Any:
    process, url, output = start_server(["policy", "serve", "--offline"])
    yield url
    stop_server(process, output)


def cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "synth_ai", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
    )


def test_kill_9_then_resume_spends_no_budget_twice(policy: str, tmp_path: Path) -> None:
    app, url, log, gate, mark = gated_app(tmp_path, after=20)
    try:
        config = tmp_path / "optimize.toml"
        config.write_text(config_text(url, policy))
        jobs_db = tmp_path / "jobs.db"
        first = cli(["optimize", str(config), "--jobs-db", str(jobs_db)], tmp_path)
        wait_for(mark, first)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        (job_dir,) = (tmp_path / "jobs.artifacts").iterdir()
        spent = json.loads((job_dir / "run_state.json").read_text())["rollouts"]
        assert 20 < spent <= BUDGET
        gate.unlink()

        resumed = cli(
            ["optimize", "--resume", job_dir.name, "--jobs-db", str(jobs_db), "--json"], tmp_path
        )
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        report = json.loads(out)
        assert report["rollouts"]["search"] <= BUDGET  # the budget counts both runs
        assert report["best_score"]["test"] - report["seed_score"]["test"] >= 0.2
        # the held rollouts were paid for before they were sent: none is handed back
        assert rollouts_logged(log) <= BUDGET + 2 * len(TEST_POOL)
    finally:
        gate.unlink(missing_ok=True)
        stop_server(app, log)


def test_cancel_through_the_api_stores_the_best_so_far(policy: str, tmp_path: Path) -> None:
    app, url, log, gate, mark = gated_app(tmp_path, after=12)
    jobs, jobs_url, jobs_log = start_server(
        ["jobs", "serve", "--db", str(tmp_path / "jobs.db")], ready="  event log:"
    )
    try:
        config = tmp_path / "optimize.toml"
        config.write_text(config_text(url, policy))
        run = cli(["optimize", str(config), "--jobs-url", jobs_url], tmp_path)
        wait_for(mark, run)
        headers = {"X-API-Key": KEY}
        (job,) = httpx.get(f"{jobs_url}/api/jobs", headers=headers).json()["jobs"]
        canceled = httpx.post(f"{jobs_url}/api/jobs/{job['job_id']}/cancel", headers=headers)
        assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
        gate.unlink()
        out, err = run.communicate(timeout=60)
        assert run.returncode == 130, out + err
        assert "stopped: canceled" in out
        artifacts = f"{jobs_url}/api/jobs/{job['job_id']}/artifacts"
        best = _artifact(f"{artifacts}/best_prompt.json", headers)
        assert best["seed_score"]["validation"] is not None
        state = _artifact(f"{artifacts}/run_state.json", headers)
        assert state["stop_reason"] == "canceled" and state["rollouts"] < BUDGET
    finally:
        gate.unlink(missing_ok=True)
        stop_server(app, log)
        stop_server(jobs, jobs_log)


def _artifact(url: str, headers: dict[str, str]) -> Any:
    deadline = time.monotonic() + 30
    while True:  # the run stores it once its batch in flight ends
        answer = httpx.get(url, headers=headers)
        if answer.status_code == 200:
            return answer.json()
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)


def test_ctrl_c_stops_at_the_next_batch_with_exit_130(policy: str, tmp_path: Path) -> None:
    app, url, log, gate, mark = gated_app(tmp_path, after=12)
    try:
        config = tmp_path / "optimize.toml"
        config.write_text(config_text(url, policy))
        run = cli(["optimize", str(config), "--jobs-db", str(tmp_path / "jobs.db")], tmp_path)
        wait_for(mark, run)
        run.send_signal(signal.SIGINT)
        gate.unlink()
        out, err = run.communicate(timeout=60)
        assert run.returncode == 130, out + err
        (job_dir,) = (tmp_path / "jobs.artifacts").iterdir()
        best = json.loads((job_dir / "best_prompt.json").read_text())
        assert best["seed_score"]["validation"] is not None
        assert json.loads((job_dir / "run_state.json").read_text())["stop_reason"] == "canceled"

        jobs_db = str(tmp_path / "jobs.db")
        resumed = cli(
            ["optimize", "--resume", job_dir.name, "--jobs-db", jobs_db, "--json"], tmp_path
        )
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err  # a canceled run may resume
        report = json.loads(out)
        assert report["rollouts"]["search"] <= BUDGET
        again = cli(["optimize", "--resume", report["job_id"], "--jobs-db", jobs_db], tmp_path)
        _, err = again.communicate(timeout=60)
        assert again.returncode == 2 and "finished; nothing to resume" in err
    finally:
        gate.unlink(missing_ok=True)
        stop_server(app, log)


def test_kill_9_of_the_jobs_server_then_resume_there(policy: str, tmp_path: Path) -> None:
    app, url, log, gate, mark = gated_app(tmp_path, after=20)
    db = str(tmp_path / "jobs.db")
    jobs, jobs_url, jobs_log = start_server(["jobs", "serve", "--db", db], ready="  event log:")
    follower = None
    try:
        config = tmp_path / "optimize.toml"
        config.write_text(config_text(url, policy))
        follower = cli(["optimize", str(config), "--jobs-url", jobs_url], tmp_path)
        wait_for(mark, follower)
        headers = {"X-API-Key": KEY}
        (job,) = httpx.get(f"{jobs_url}/api/jobs", headers=headers).json()["jobs"]
        jobs.send_signal(signal.SIGKILL)
        jobs.wait(timeout=10)
        stop_server(jobs, jobs_log)
        follower.kill()  # it would wait for the server to come back
        follower.communicate(timeout=30)
        gate.unlink()
        jobs, jobs_url, jobs_log = start_server(["jobs", "serve", "--db", db], ready="  event log:")
        resumed = cli(
            ["optimize", "--resume", job["job_id"], "--jobs-url", jobs_url, "--json"], tmp_path
        )
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        report = json.loads(out)
        assert report["rollouts"]["search"] <= BUDGET
        assert report["best_score"]["test"] - report["seed_score"]["test"] >= 0.2
        assert rollouts_logged(log) <= BUDGET + 2 * len(TEST_POOL)
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
        gate.unlink(missing_ok=True)
        stop_server(app, log)
        stop_server(jobs, jobs_log)
