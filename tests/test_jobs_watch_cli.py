"""JobsWatcher windows, sink, hooks and stop conditions; the `jobs` commands and exit codes."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.cli.jobs import EXIT_NOT_FOUND, EXIT_UNAUTHORISED, compact_line
from synth_ai.jobs import JobEvent, JobState, JobsWatcher, StreamSettings, create_jobs_app
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY

HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = StreamSettings(end_grace_s=0.05, max_metric_hz=1000)
    with serve_in_background(
        create_jobs_app(tmp_path_factory.mktemp("j") / "j.db", settings=settings)
    ) as base:
        yield base


def job_with(url: str, events: list[dict[str, Any]]) -> str:
    job_id = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
    httpx.post(f"{url}/api/jobs/{job_id}/events", json={"events": events}, headers=HEADERS)
    return job_id


def metric(name: str, value: float, step: int) -> dict[str, Any]:
    return {"type": "rl.step.metric", "data": {"name": name, "value": value, "step": step}}


def status(state: str) -> dict[str, Any]:
    return {"type": "job.status", "data": {"state": state}}


def test_watcher_windows_sink_hooks(url: str, tmp_path: Path) -> None:
    values = [0.5, 0.7, 0.6, 0.9]
    events = [status("running")] + [metric("reward", v, i) for i, v in enumerate(values)]
    events += [
        {"type": "artifact.checkpoint", "data": {"kind": "checkpoint", "url": "file:///c"}},
        {"type": "system.log", "message": "halfway"},
        status("succeeded"),
    ]
    job_id = job_with(url, events)
    seen: dict[str, list[int]] = {"status": [], "metric": [], "artifact": []}
    sink = tmp_path / "events.jsonl"

    async def run() -> JobsWatcher:
        async with TaskAppClient(url, KEY) as client:
            watcher = JobsWatcher(
                client,
                job_id,
                window=3,
                jsonl_path=sink,
                on_status_change=lambda e: seen["status"].append(e.seq),
                on_metric=lambda e: seen["metric"].append(e.seq),
                on_artifact=lambda e: seen["artifact"].append(e.seq),
            )
            assert await watcher.run() is JobState.SUCCEEDED
            return watcher

    watcher = asyncio.run(run())
    summary = watcher.metrics["reward"].summary()
    last3 = values[-3:]
    assert summary["last"] == 0.9 and summary["min"] == 0.6 and summary["max"] == 0.9
    assert math.isclose(summary["mean"], sum(last3) / 3)
    assert math.isclose(
        summary["std"], math.sqrt(sum((v - sum(last3) / 3) ** 2 for v in last3) / 3)
    )
    assert seen == {"status": [1, 8], "metric": [2, 3, 4, 5], "artifact": [6]}
    assert watcher.step == 3 and list(watcher.logs) == ["halfway"]
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 9))


def test_watcher_stop_condition_and_timeout(url: str) -> None:
    job_id = job_with(
        url, [status("running")] + [metric("loss", 1.0 / (i + 1), i) for i in range(10)]
    )

    async def run(**options: Any) -> JobsWatcher:
        async with TaskAppClient(url, KEY) as client:
            watcher = JobsWatcher(client, job_id, **options)
            await watcher.run()
            return watcher

    stopped = asyncio.run(
        run(
            stop_when=lambda e, w: (w.metrics.get("loss") and w.metrics["loss"].last < 0.2) or False
        )
    )
    assert stopped.metrics["loss"].last < 0.2 and stopped.last_seq < 11
    with pytest.raises(TimeoutError):
        asyncio.run(run(timeout_s=0.5))  # the job never ends


def test_compact_line() -> None:
    event = JobEvent(
        seq=3,
        job_id="j",
        type="rl.step.metric",
        ts=0,
        data={"name": "avg_reward", "value": 0.62, "step": 820},
    )
    assert compact_line(event).split(" ", 1)[1] == "step=820 avg_reward=0.62"


def test_jobs_commands_and_exit_codes(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    ok = job_with(url, [status("running"), metric("loss", 1.84, 820), status("succeeded")])
    failed = job_with(url, [status("running"), status("failed")])
    endless = job_with(url, [status("running")])
    common = ["--url", url]

    listed = runner.invoke(main, ["jobs", "list", *common])
    assert listed.exit_code == 0 and ok in listed.output
    shown = runner.invoke(main, ["jobs", "status", ok, "--json", *common])
    assert shown.exit_code == 0 and json.loads(shown.output)["state"] == "succeeded"

    out = tmp_path / "stream.jsonl"
    streamed = runner.invoke(main, ["jobs", "stream", ok, *common, "--jsonl", str(out)])
    assert streamed.exit_code == 0, streamed.output
    assert "step=820 loss=1.84" in streamed.output and "state=succeeded" in streamed.output
    assert len(out.read_text().splitlines()) == 3
    resumed = runner.invoke(
        main, ["jobs", "stream", ok, *common, "--since-id", "2", "--types", "status"]
    )
    assert resumed.exit_code == 0 and resumed.output.count("state=") == 1
    # the exit code is the job's final state whatever --types hides
    for shown_types, job, code in (("artifact", ok, 0), ("metric", failed, 1)):
        filtered = runner.invoke(main, ["jobs", "stream", job, *common, "--types", shown_types])
        assert filtered.exit_code == code, filtered.output

    assert runner.invoke(main, ["jobs", "stream", failed, *common]).exit_code == 1
    assert (
        runner.invoke(main, ["jobs", "stream", endless, *common, "--timeout", "0.3"]).exit_code == 2
    )
    assert runner.invoke(main, ["jobs", "watch", ok, *common, "--per-event"]).exit_code == 0
    polled = runner.invoke(
        main, ["jobs", "watch", failed, *common, "--no-sse", "--quiet", "--interval", "0.05"]
    )
    assert polled.exit_code == 1 and "failed" in polled.output
    missing = runner.invoke(main, ["jobs", "stream", "job_nope", *common])
    assert missing.exit_code == EXIT_NOT_FOUND and "'job_nope'" in missing.output
    refused = runner.invoke(main, ["jobs", "status", ok, *common, "--api-key", "wrong"])
    assert refused.exit_code == EXIT_UNAUTHORISED and "401 unauthorised" in refused.output


def test_watch_labels_kinds_counts_steps_and_ends_with_a_summary(url: str) -> None:
    runner = CliRunner()
    fine_tuning = job_with(
        url,
        [
            {"type": "job.status", "data": {"state": "running", "total": 3}},
            *(
                {"type": "ft.step.metric", "data": {"name": "loss", "value": v, "step": i + 1}}
                for i, v in enumerate([2.0, 1.0, 0.5])
            ),
            {"type": "ft.eval.metric", "data": {"name": "accuracy", "value": 0.75, "step": 3}},
            {
                "type": "artifact.checkpoint",
                "data": {"kind": "checkpoint", "url": "s3://bucket/ft/step-3", "step": 3},
            },
            status("succeeded"),
        ],
    )
    per_event = runner.invoke(main, ["jobs", "watch", fine_tuning, "--url", url, "--per-event"])
    assert per_event.exit_code == 0, per_event.output
    out = per_event.output
    assert "[fine-tuning] t=" in out and "step=2/3 loss=1" in out
    summary = out[out.index(f"fine-tuning job {fine_tuning} succeeded in ") :]
    assert "step 3 of 3; 7 events (last id 7)" in summary
    assert "fine-tuning metrics" in summary
    rows = {line.split()[0]: line.split()[1:] for line in summary.splitlines()[2:] if line.strip()}
    assert rows["loss"] == ["0.5", "1.167", "3"] and rows["accuracy"] == ["0.75", "0.75", "1"]
    assert "artifact checkpoint: s3://bucket/ft/step-3" in summary

    # the live view (not a terminal here: rendered once) ends with the same summary
    rl = job_with(
        url,
        [status("running"), metric("reward", 0.25, 1), metric("reward", 0.75, 2), status("failed")],
    )
    live = runner.invoke(main, ["jobs", "watch", rl, "--url", url, "--interval", "0.05"])
    assert live.exit_code == 1, live.output
    ending = [line for line in live.output.splitlines() if line.startswith(f"RL job {rl} failed")]
    assert len(ending) == 1 and "RL metrics" in live.output, live.output  # on a line of its own
    assert "reward" in live.output and "step 2;" in live.output

    # an eval job announces its total in its running status; eval results are its steps
    evaluation = job_with(
        url,
        [
            {"type": "job.status", "data": {"state": "running", "total": 4}},
            {"type": "eval.result", "message": "seed 0: reward 1.0 (ok)", "data": {"step": 1}},
            {"type": "eval.metric", "data": {"name": "mean_reward", "value": 1.0, "step": 1}},
            {"type": "eval.result", "message": "seed 1: reward 0.0 (ok)", "data": {"step": 2}},
            {"type": "eval.metric", "data": {"name": "mean_reward", "value": 0.5, "step": 2}},
            status("canceled"),
        ],
    )
    polled = runner.invoke(
        main,
        [
            "jobs",
            "watch",
            evaluation,
            "--url",
            url,
            "--no-sse",
            "--interval",
            "0.05",
            "--per-event",
        ],
    )
    assert polled.exit_code == 1, polled.output
    assert "[eval] " in polled.output and "step=2/4 mean_reward=0.5" in polled.output
    assert f"eval job {evaluation} canceled" in polled.output and "step 2 of 4" in polled.output


def test_jobs_routes_mount_into_a_task_app_and_emit_in_process(tmp_path: Path) -> None:
    from synth_ai.jobs import JobEmitter, JobsRoutes, JobsService
    from synth_ai.task import create_task_app

    from .conftest import make_config

    service = JobsService(tmp_path / "j.db", StreamSettings(end_grace_s=0.05))
    routes = JobsRoutes(service)
    emitted: list[int] = []

    async def rollout(request: Any, context: Any) -> dict[str, Any]:
        job_id = request.env.config["job_id"]
        emitter = JobEmitter(service, job_id)  # an executor reporting progress
        emitter.emit_metric("reward", 1.0, step=request.env.seed)
        emitter.emit_status("succeeded")
        emitted.append(request.env.seed)
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    config = make_config(
        rollout,
        routes=routes.protected,
        public_routes=routes.public,
        cors_origins=["https://ui.example"],
    )
    with serve_in_background(create_task_app(config)) as url:
        assert httpx.get(f"{url}/api/jobs").status_code == 401
        job_id = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
        body = {"run_id": "r", "env": {"seed": 7, "config": {"job_id": job_id}}}
        assert httpx.post(f"{url}/rollout", json=body, headers=HEADERS).status_code == 200
        token = httpx.post(f"{url}/api/jobs/{job_id}/stream-token", headers=HEADERS).json()["token"]
        browser = {"Origin": "https://ui.example"}
        with httpx.stream(
            "GET",
            f"{url}/api/jobs/{job_id}/stream",
            params={"token": token},
            headers=browser,
            timeout=10,
        ) as response:
            assert response.headers["access-control-allow-origin"] == "https://ui.example"
            text = response.read().decode()
    assert "event: metric" in text and '"state":"succeeded"' in text and "event: end" in text
    assert emitted == [7]


def test_the_live_view_and_the_summary_show_one_mean() -> None:
    from rich.console import Console

    from synth_ai.cli.jobs_view import live_view, print_summary

    watcher = JobsWatcher(None, "job_means", window=50)
    values = [float(n) for n in range(120)]  # the last 50 average 94.5, all of them 59.5
    for seq, value in enumerate(values, start=1):
        watcher.observe(JobEvent(seq=seq, job_id="job_means", **metric("reward", value, seq)))
    live, final = Console(record=True, width=200), Console(record=True, width=200)
    live.print(live_view(watcher))
    print_summary(final, watcher)
    shown, ended = live.export_text(), final.export_text()
    row = next(line.split() for line in shown.splitlines() if "reward" in line)
    assert "mean" in shown and "min (last 50)" in shown
    assert row[1:5] == ["119", "59.5", "120", "70"]
    assert "59.5" in ended and "94.5" not in ended
