"""What the commands print: `--json` gives one JSON document on stdout and nothing else; the
default is for people (a transcript for `traces show`); every time is ISO 8601, never Unix
seconds; and `serve --trace`, the demo and `traces` agree on one default trace store."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from synth_ai.cli import main
from synth_ai.cli.trace_store import location_from_environment
from synth_ai.jobs import create_jobs_app
from synth_ai.task import serve_in_background
from synth_ai.tracing_v3 import SessionTracer, TraceStore
from synth_ai.tracing_v3.settings import DEFAULT_DB_PATH

from .conftest import KEY
from .processes import start_server, stop_server

HEADERS = {"X-API-Key": KEY}
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"
EPOCH = re.compile(r"(?<![\d.])1[5-9]\d{8}(\.\d+)?(?![\d.])")  # Unix seconds, 2017-2033


def synth(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    """Run the CLI as a user does; stdout and stderr kept apart."""
    return subprocess.run(
        [sys.executable, "-m", "synth_ai", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env if env is not None else {**os.environ},
    )


@pytest.fixture(scope="module")
def jobs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_in_background(create_jobs_app(tmp_path_factory.mktemp("j") / "j.db")) as url:
        yield url


def finished_job(url: str) -> str:
    events = [
        {"type": "job.status", "data": {"state": "running"}},
        {"type": "rl.step.metric", "data": {"name": "loss", "value": 1.5, "step": 1}},
        {"type": "job.status", "data": {"state": "succeeded"}},
    ]
    job_id: str = httpx.post(
        f"{url}/api/jobs", json={"metadata": {"run": "r1"}}, headers=HEADERS
    ).json()["job_id"]
    httpx.post(f"{url}/api/jobs/{job_id}/events", json={"events": events}, headers=HEADERS)
    return job_id


def test_jobs_list_status_and_stream_json_and_iso_times(jobs_url: str) -> None:
    job_id = finished_job(jobs_url)
    common = ["--url", jobs_url]

    listed = synth("jobs", "list", *common, "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)["jobs"]  # the whole of stdout is one document
    mine = next(job for job in jobs if job["job_id"] == job_id)
    assert re.fullmatch(ISO, mine["created_at"]) and re.fullmatch(ISO, mine["updated_at"])
    assert mine["state"] == "succeeded"

    table = synth("jobs", "list", *common)
    assert job_id in table.stdout and re.search(ISO, table.stdout)

    status = synth("jobs", "status", job_id, *common, "--json")
    snapshot = json.loads(status.stdout)
    assert snapshot["job_id"] == job_id and snapshot["state"] == "succeeded"
    assert re.fullmatch(ISO, snapshot["created_at"]) and snapshot["metadata"] == {"run": "r1"}

    human = synth("jobs", "status", job_id, *common)
    assert human.returncode == 0 and "  state: succeeded" in human.stdout
    assert re.search(rf"  created at: {ISO}\n", human.stdout)
    assert '  metadata: {"run": "r1"}' in human.stdout

    streamed = synth("jobs", "stream", job_id, *common)
    assert streamed.returncode == 0
    lines = streamed.stdout.splitlines()
    assert len(lines) == 3 and all(re.match(rf"t={ISO} ", line) for line in lines)
    for output in (listed, table, status, human, streamed):
        assert not EPOCH.search(output.stdout), output.stdout
        assert KEY not in output.stdout + output.stderr


def test_eval_json_is_the_only_thing_on_stdout(tmp_path: Path) -> None:
    result = synth(
        "eval",
        "math",
        "--offline-policy",
        "--seeds",
        "0-2",
        "--json",
        "--out",
        str(tmp_path / "results.jsonl"),
        "--jobs-db",
        str(tmp_path / "jobs.db"),
    )
    report = json.loads(result.stdout)  # nothing but the document
    assert result.returncode == report["exit_code"] == 0, result.stderr
    assert report["summary"]["total"] == 3 and report["summary"]["completed"] == 3
    assert report["job_id"].startswith("job_") and report["verdict"] == "passed"
    assert re.fullmatch(ISO, report["started_at"]) and re.fullmatch(ISO, report["finished_at"])
    assert report["results"] == str(tmp_path / "results.jsonl")
    assert "evaluation summary" in result.stderr  # the table is still shown, on stderr


SYSTEM = {"role": "system", "content": "Use the calculator."}
QUESTION = {"role": "user", "content": "What is 2+2? " + "Think hard. " * 100}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "t1", "function": {"name": "calculator", "arguments": '{"expression":"2+2"}'}}
    ],
}
TOOLS = [{"type": "function", "function": {"name": "calculator"}}]
STARTED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


async def record(tracer: SessionTracer) -> None:
    """Two turns: a tool call, then the answer; the environment rewards the second."""
    usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    async with tracer.session("s-1", {"seed": 4}) as session:
        async with session.timestep("turn-0"):
            session.record_message("What is 2+2?", "observation")
            session.record_chat_completion(
                {"model": "m-large", "messages": [SYSTEM, QUESTION], "tools": TOOLS},
                {"id": "c1", "choices": [{"message": CALL}], "usage": usage},
                started_at=STARTED,
                completed_at=STARTED + timedelta(milliseconds=300),
            )
            session.record_environment(0.0)
        async with session.timestep("turn-1"):
            tool = {"role": "tool", "tool_call_id": "t1", "content": "4"}
            answer = {"role": "assistant", "content": "The answer is 4."}
            session.record_chat_completion(
                {"model": "m-large", "messages": [SYSTEM, QUESTION, CALL, tool], "tools": TOOLS},
                {"id": "c2", "choices": [{"message": answer}], "usage": usage},
                started_at=STARTED + timedelta(seconds=1),
                completed_at=STARTED + timedelta(seconds=1, milliseconds=200),
            )
            session.record_environment(1.0, terminated=True, state_after={"solved": True})
            session.record_event_reward(
                len(session.trace.event_history) - 1, 0.25, key="format", source="grader"
            )
        session.record_outcome_reward(1.0)


def test_traces_show_prints_a_transcript_and_json_on_request(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store = TraceStore(db)
    try:
        asyncio.run(record(SessionTracer(store)))
        assert store.flush(10)
    finally:
        store.close()

    shown = synth("traces", "show", "s-1", "--db", str(db), "--max-chars", "80")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert re.match(rf"session s-1  created {ISO}\n", text)
    assert "outcome reward 1  models: m-large  tokens: 50" in text
    assert re.search(rf"step 0 turn-0 \(turn \d+\)  {ISO}", text)
    assert re.search(rf"{ISO} observation: What is 2\+2\?", text)
    assert re.search(rf"{ISO} model call m-large \(\d+ ms, 25 tokens\)", text)
    assert "system: Use the calculator." in text
    assert re.search(r"user: What is 2\+2\? Think hard\..* … \(\+\d+ chars\)", text)  # trimmed
    assert 'assistant → tool call calculator({"expression": "2+2"})' in text
    assert "tool: 4" in text and "assistant: The answer is 4." in text
    assert "(3 earlier message(s))" in text  # the resent history is not shown twice
    assert "environment reward 1 terminated" in text
    assert "event reward 0.25 key=format source=grader" in text
    assert "achievements_count" not in text  # the app never set it
    assert not EPOCH.search(text), text

    raw = synth("traces", "show", "s-1", "--db", str(db), "--json")
    assert json.loads(raw.stdout)["session_id"] == "s-1"

    listed = synth("traces", "list", "--db", str(db), "--json")
    (row,) = json.loads(listed.stdout)["sessions"]
    assert row["session_id"] == "s-1" and row["outcome_reward"] == 1.0
    assert re.fullmatch(ISO, row["created_at"])
    table = synth("traces", "list", "--db", str(db))
    assert "s-1" in table.stdout and re.search(ISO, table.stdout)
    assert "1 session(s)" in table.stdout and "more exist" not in table.stdout


def test_traces_list_says_when_it_shows_only_the_newest(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store = TraceStore(db)
    try:

        async def three() -> None:
            tracer = SessionTracer(store)
            for n in range(3):
                async with tracer.session(f"s-{n}", {}) as session:
                    session.record_outcome_reward(float(n), achievements_count=n)

        asyncio.run(three())
        assert store.flush(10)
    finally:
        store.close()
    cut = synth("traces", "list", "--db", str(db), "--limit", "2")
    assert "the newest 2 session(s); more exist (--limit)" in cut.stdout
    assert json.loads(synth("traces", "list", "--db", str(db), "--limit", "2", "--json").stdout)[
        "truncated"
    ]
    whole = json.loads(synth("traces", "list", "--db", str(db), "--limit", "3", "--json").stdout)
    assert len(whole["sessions"]) == 3 and not whole["truncated"]
    shown = synth("traces", "show", "s-2", "--db", str(db)).stdout
    assert '"achievements_count": 2' in shown  # set: shown


def test_one_default_trace_path(
    tmp_path: Path, offline_policy_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --trace` (no value) writes where `traces` reads by default, as the demo does."""
    serve = main.get_command(None, "serve")  # type: ignore[arg-type]
    demo = main.get_command(None, "demo")  # type: ignore[arg-type]
    assert serve is not None and demo is not None
    trace = next(p for p in serve.params if p.name == "trace")
    out_dir = next(p for p in demo.params if p.name == "out_dir")
    assert Path(str(trace.flag_value)) / DEFAULT_DB_PATH.name == DEFAULT_DB_PATH  # type: ignore[attr-defined]
    assert Path(str(out_dir.default)) / DEFAULT_DB_PATH.name == DEFAULT_DB_PATH
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKAPP_")}
    monkeypatch.delenv("TASKAPP_TRACE_DB", raising=False)
    assert location_from_environment().path == DEFAULT_DB_PATH

    process, url, output = start_server(
        ["serve", "math", "--trace"], env=env, cwd=tmp_path, ready="  tracing: "
    )
    try:
        health = httpx.get(f"{url}/health", headers=HEADERS).json()
        assert health["tracing"]["db"] == str(DEFAULT_DB_PATH)
        rollout = {
            "run_id": "default-path-1",
            "env": {"seed": 0},
            "policy": {"config": {"model": "offline-policy", "inference_url": offline_policy_url}},
        }
        assert httpx.post(f"{url}/rollout", json=rollout, headers=HEADERS).status_code == 200
    finally:
        text = stop_server(process, output)
    assert f"tracing: SQLite {DEFAULT_DB_PATH}; SFT JSONL in {DEFAULT_DB_PATH.parent}" in text
    listed = synth("traces", "list", "--json", cwd=tmp_path, env=env)
    assert [s["session_id"] for s in json.loads(listed.stdout)["sessions"]] == ["default-path-1"]
