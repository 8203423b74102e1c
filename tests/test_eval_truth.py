"""An eval's job tells the truth: its status events carry `step` up to the total, a failed
verdict (`--fail-under`, `--max-error-rate`) ends it `failed` with the reason, errored seeds
count in the summary (apart, and in the mean as 0 unless `--exclude-errors`), and a run that
fails its preflight makes no job, here or on a jobs server."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.eval import EvalJobKind
from synth_ai.jobs import JobsService, create_jobs_app
from synth_ai.jobs.models import JobEvent
from synth_ai.task import create_task_app, serve_in_background

from .conftest import KEY, echo_rollout, make_config
from .processes import free_port


def serve(rollout: Any) -> Any:
    return serve_in_background(create_task_app(make_config(rollout=rollout)))


def run_eval(url: str, tmp_path: Path, *args: str) -> Any:
    db = tmp_path / "jobs.db"
    out = tmp_path / "results.jsonl"
    return CliRunner().invoke(main, ["eval", url, "--out", str(out), "--jobs-db", str(db), *args])


def jobs_of(db: Path) -> list[tuple[dict[str, Any], list[JobEvent]]]:
    async def read() -> list[tuple[dict[str, Any], list[JobEvent]]]:
        service = JobsService(db)
        try:
            jobs = await service.list()
            return [(job, await service.events(job["job_id"], 0, 10_000, None)) for job in jobs]
        finally:
            await service.close()

    return asyncio.run(read())


def statuses(events: list[JobEvent]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "job.status"]


def half_broken(request: Any, context: Any) -> Any:
    if request.env.seed % 2:
        raise RuntimeError("odd seed")
    return echo_rollout(request, context)


def test_status_events_carry_the_step_up_to_the_total(tmp_path: Path) -> None:
    with serve(echo_rollout) as url:
        result = run_eval(url, tmp_path, "--seeds", "0-5", "--concurrency", "2")
    assert result.exit_code == 0, result.output
    ((job, events),) = jobs_of(tmp_path / "jobs.db")
    steps = [s["step"] for s in statuses(events)]
    assert steps[0] == 0 and steps[-1] == 6 and steps == sorted(steps)  # live ones may coalesce
    assert all(s["total"] == 6 for s in statuses(events))
    assert job["state"] == "succeeded"


def test_a_failed_verdict_fails_the_job_with_its_reason(tmp_path: Path) -> None:
    with serve(echo_rollout) as url:  # rewards are the seeds: mean 2.0
        result = run_eval(url, tmp_path, "--seeds", "0-4", "--fail-under", "3")
    assert result.exit_code == 1
    ((job, events),) = jobs_of(tmp_path / "jobs.db")
    assert job["state"] == "failed"
    assert statuses(events)[-1]["message"] == "mean reward 2.000 < --fail-under 3"


def test_an_error_rate_above_the_limit_fails_the_job(tmp_path: Path) -> None:
    with serve(half_broken) as url:
        result = run_eval(url, tmp_path, "--seeds", "0-3", "--max-error-rate", "0.25")
    assert result.exit_code == 1
    ((job, events),) = jobs_of(tmp_path / "jobs.db")
    assert job["state"] == "failed"
    assert (
        "2 of 4 seeds failed (error rate 0.50 > --max-error-rate 0.25)"
        in (statuses(events)[-1]["message"])
    )


def test_errored_seeds_count_as_zero_unless_excluded(tmp_path: Path) -> None:
    tolerant = ("--seeds", "0-3", "--max-error-rate", "1", "--json")
    with serve(half_broken) as url:  # seeds 0 and 2 score 0 and 2; 1 and 3 raise
        counted = run_eval(url, tmp_path, *tolerant)
        excluded = run_eval(url, tmp_path, *tolerant, "--exclude-errors")
    assert counted.exit_code == 0, counted.output
    assert '"mean_reward": 0.5' in counted.stdout  # (0 + 2 + 0 + 0) / 4
    assert "2 (in the mean as 0)" in counted.output
    assert '"mean_reward": 1.0' in excluded.stdout  # (0 + 2) / 2
    assert "2 (not in the mean)" in excluded.output


def test_a_failed_preflight_makes_no_job(tmp_path: Path) -> None:
    result = run_eval(f"http://127.0.0.1:{free_port()}", tmp_path, "--seeds", "0")
    assert result.exit_code == 3 and "/health check failed" in result.output
    assert not (tmp_path / "jobs.db").exists() or jobs_of(tmp_path / "jobs.db") == []


def test_a_failed_preflight_makes_no_job_on_a_jobs_server(tmp_path: Path) -> None:
    """The server runs the preflight before it stores the job: the creator gets 422
    `preflight_failed` naming the check, `eval --jobs-server` exits 3, and no job is listed."""
    jobs = create_jobs_app(tmp_path / "server.db", kinds={"eval": EvalJobKind()})
    gone = f"http://127.0.0.1:{free_port()}"
    with serve_in_background(jobs) as jobs_url:
        result = run_eval(gone, tmp_path, "--seeds", "0", "--jobs-server", jobs_url)
        with httpx.Client(base_url=jobs_url, headers={"X-API-Key": KEY}) as http:
            config = {"task_app_url": gone, "api_key": KEY, "seeds": [0]}
            refused = http.post("/api/jobs", json={"kind": "eval", "config": config})
            listed = http.get("/api/jobs").json()["jobs"]
    assert result.exit_code == 3, result.output
    assert "/health check failed" in result.output
    assert refused.status_code == 422, refused.text
    error = refused.json()["detail"]["error"]
    assert error["code"] == "preflight_failed" and "/health check failed" in error["message"]
    assert KEY not in refused.text
    assert listed == []


def test_a_passing_preflight_on_a_jobs_server_makes_the_job(tmp_path: Path) -> None:
    jobs = create_jobs_app(tmp_path / "server.db", kinds={"eval": EvalJobKind()})
    with serve(echo_rollout) as app_url, serve_in_background(jobs) as jobs_url:
        result = run_eval(app_url, tmp_path, "--seeds", "0-2", "--jobs-server", jobs_url)
        with httpx.Client(base_url=jobs_url, headers={"X-API-Key": KEY}) as http:
            listed = http.get("/api/jobs").json()["jobs"]
    assert result.exit_code == 0, result.output
    assert [job["state"] for job in listed] == ["succeeded"]


def test_an_app_that_never_answers_fails_the_preflight_before_the_creator_gives_up(
    tmp_path: Path,
) -> None:
    """A task app that takes connections and never answers (each check would wait out the
    eval's 120 s timeout, with retries): the server refuses the job as `preflight_failed`
    within its preflight deadline, before any client's wait for the answer runs out."""
    jobs = create_jobs_app(
        tmp_path / "server.db", kinds={"eval": EvalJobKind(preflight_deadline_s=1.0)}
    )
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts
        stuck = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with serve_in_background(jobs) as jobs_url:
            result = run_eval(stuck, tmp_path, "--seeds", "0", "--jobs-server", jobs_url)
            with httpx.Client(base_url=jobs_url, headers={"X-API-Key": KEY}) as http:
                listed = http.get("/api/jobs").json()["jobs"]
    assert result.exit_code == 3, result.output
    assert "/health check did not answer within the 1 s" in result.output
    assert listed == []
