"""A fleet's traces in one place: task-app processes tracing to one PostgreSQL database, and the
command line naming stores by path or URL (refused in one line when no engine has them)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_ai.cli import main
from synth_ai.tracing_v3 import TraceReader, TraceStore

from .conftest import KEY, make_config
from .processes import start_server, stop_server
from .test_tracing_store import trace_with

HEADERS = {"X-API-Key": KEY}
PASSWORD = "fleetPw7xq"  # trust auth ignores it; nothing printed or answered may show it


def with_password(url: str) -> tuple[str, str]:
    """The URL with a password (the one it has, else PASSWORD), and that password."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc)), PASSWORD


def rollout(cid: str, seed: int, policy_url: str) -> dict[str, Any]:
    return {
        "trace_correlation_id": cid,
        "env": {"seed": seed},
        "policy": {"config": {"model": "offline-policy", "inference_url": policy_url}},
    }


async def drive(url: str, name: str, count: int, policy_url: str) -> list[str]:
    """`count` concurrent rollouts; answers the correlation ids acknowledged as stored."""
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60, limits=limits) as c:
        responses = await asyncio.gather(
            *(c.post("/rollout", json=rollout(f"{name}-{i}", i, policy_url)) for i in range(count))
        )
    stored = []
    for response in responses:
        assert response.status_code == 200, response.text
        meta = response.json()["pipeline_metadata"]
        assert meta["trace_stored"] is True, meta.get("trace_error")
        stored.append(response.json()["trace_correlation_id"])
    return stored


def test_two_task_app_processes_store_every_acknowledged_session_in_one_database(
    postgres_url: str, offline_policy_url: str
) -> None:
    url, password = with_password(postgres_url)
    servers = [start_server(["serve", "math", "--trace", url]) for _ in range(2)]
    try:

        async def load() -> list[list[str]]:
            return await asyncio.gather(
                *(
                    drive(base, f"p{n}", 120, offline_policy_url)
                    for n, (_, base, _) in enumerate(servers)
                )
            )

        acknowledged = [cid for stored in asyncio.run(load()) for cid in stored]
        # a rollout retried on the other process keeps its correlation id: the retry replaces it
        for (_, base, _), seed in zip(servers, (3, 4), strict=True):
            body = rollout("p0-0", seed, offline_policy_url)
            again = httpx.post(f"{base}/rollout", json=body, headers=HEADERS, timeout=60)
            assert again.json()["pipeline_metadata"]["trace_stored"] is True
        healths = [
            httpx.get(f"{base}/health", headers=HEADERS).json()["tracing"] for _, base, _ in servers
        ]
    finally:
        outputs = [stop_server(process, output) for process, _, output in servers]
    for health in healths:
        assert health["healthy"] is True and health["write_errors"] == 0
        assert health["db"] == str(url).replace(password, "***") and password not in str(health)
    assert sum(health["written"] for health in healths) == 240 + 2
    for output in outputs:
        assert "Tracing to" in output and password not in output

    with TraceReader(url) as reader:
        listed = reader.list_sessions(limit=1000)
        assert sorted(s["session_id"] for s in listed) == sorted(acknowledged)
        for cid in acknowledged:
            trace = reader.load_session(cid)
            assert trace is not None and trace.outcome_reward is not None
            assert [e.event_type for e in trace.event_history] == ["cais", "environment"]
        assert reader.load_session("p0-0").metadata["seed"] == 4  # the later attempt


def test_traces_commands_read_a_postgres_store(postgres_url: str, tmp_path: Path) -> None:
    store = TraceStore(postgres_url)
    try:
        for i in range(3):
            asyncio.run(store.write(trace_with(f"pg-{i}")))
    finally:
        store.close()
    runner = CliRunner()
    listed = runner.invoke(main, ["traces", "list", "--db", postgres_url])
    assert listed.exit_code == 0, listed.output
    assert all(f"pg-{i}" in listed.output for i in range(3)) and "3 session(s)" in listed.output
    shown = runner.invoke(main, ["traces", "show", "pg-1", "--json", "--db", postgres_url])
    assert shown.exit_code == 0 and '"session_id": "pg-1"' in shown.output
    out = tmp_path / "sft.jsonl"
    exported = runner.invoke(main, ["traces", "export-sft", str(out), "--db", postgres_url])
    assert exported.exit_code == 0 and "wrote 3 example(s)" in exported.output
    assert len(out.read_text().splitlines()) == 3


def test_a_postgres_store_that_cannot_be_read_is_one_line(postgres_url: str) -> None:
    runner = CliRunner()
    empty = runner.invoke(main, ["traces", "list", "--db", postgres_url])
    assert empty.exit_code == 1 and "session_traces" in empty.output
    assert "Traceback" not in empty.output and len(empty.output.strip().splitlines()) == 1
    unreachable = "postgresql://nobody:hunter2pw@127.0.0.1:1/none"
    down = runner.invoke(main, ["traces", "list", "--db", unreachable])
    assert down.exit_code == 1 and "cannot read traces at postgresql://nobody:***@" in down.output
    assert "hunter2pw" not in down.output and len(down.output.strip().splitlines()) == 1


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scheme=st.from_regex(r"[a-z][a-z0-9+.-]{0,10}", fullmatch=True).filter(
        lambda s: s not in {"sqlite", "postgres", "postgresql", "postgresql+psycopg"}
    )
)
def test_a_store_url_of_no_engine_is_a_usage_error_and_makes_no_file(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    by_option = runner.invoke(main, ["traces", "list", "--db", f"{scheme}://x"])
    monkeypatch.setenv("TASKAPP_TRACE_DB", f"{scheme}://x")
    by_variable = runner.invoke(main, ["traces", "list"])
    for result, source in ((by_option, "--db"), (by_variable, "TASKAPP_TRACE_DB")):
        assert result.exit_code == 2, result.output
        assert f"{source}: unknown database scheme {scheme!r}" in result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def run_cli(args: list[str], env: dict[str, str], prelude: str = "") -> subprocess.CompletedProcess:
    """The CLI in a fresh process (a refusal that failed to refuse would serve: a timeout)."""
    script = f"{prelude}\nfrom synth_ai.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_trace_stores_it_cannot_open_before_serving(tmp_path: Path) -> None:
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    bad_option = run_cli(["serve", "math", "--trace", "mysql://root@db/traces"], env)
    assert bad_option.returncode == 2
    assert "--trace: unknown database scheme 'mysql'" in bad_option.stderr
    sqlite_url = run_cli(["serve", "math", "--trace", "sqlite:///t.db"], env)
    assert sqlite_url.returncode == 2
    assert "--trace takes a directory or a postgresql:// URL" in sqlite_url.stderr
    traced = {**env, "TASKAPP_TRACING_ENABLED": "1", "TASKAPP_TRACE_DB": "foo://x"}
    bad_variable = run_cli(["serve", "math"], traced)
    assert bad_variable.returncode == 2
    assert "TASKAPP_TRACE_DB: unknown database scheme 'foo'" in bad_variable.stderr
    without_driver = run_cli(
        ["serve", "math", "--trace", "postgresql://u:secretpw@127.0.0.1/x"],
        env,
        prelude="import sys; sys.modules['psycopg'] = None",
    )
    assert without_driver.returncode == 1
    assert "pip install 'synth-ai[postgres]'" in without_driver.stderr
    for result in (bad_option, sqlite_url, bad_variable, without_driver):
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr and "secretpw" not in result.stderr
        assert [line for line in lines if line.startswith("Error: ")] == lines[-1:]


def test_traces_commands_without_the_postgres_extra_say_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    result = CliRunner().invoke(main, ["traces", "list", "--db", "postgresql://u@127.0.0.1/x"])
    assert result.exit_code == 1 and "pip install 'synth-ai[postgres]'" in result.output


@given(password=st.text(st.characters(categories=["L", "N"]), min_size=6, max_size=24))
def test_health_never_shows_a_store_password(password: str) -> None:
    from synth_ai.task.tracing import RolloutTracing

    url = f"postgresql://synth:{password}@db.internal:5432/traces"
    store = TraceStore(url)
    try:
        shown = store.health()["db"]
    finally:
        store.close()
    tracing = RolloutTracing(make_config(tracing=True, trace_db=url)).health()
    assert shown == tracing["db"] == "postgresql://synth:***@db.internal:5432/traces"


def test_the_traces_commands_on_a_store_without_tables_say_so_in_one_line(
    database_url: str,
) -> None:
    """A database nothing has traced into yet (an empty file, a new PostgreSQL database)."""
    if not database_url.startswith("postgresql"):
        import sqlite3

        with sqlite3.connect(database_url) as made:
            made.execute("CREATE TABLE unrelated (x)")
    for args in (["list"], ["show", "s-1"], ["export-sft", os.devnull]):
        result = CliRunner().invoke(main, ["traces", *args, "--db", database_url])
        assert result.exit_code == 1, result.output
        assert "no traces at " in result.output and "session_traces" in result.output
        assert "Traceback" not in result.output and len(result.output.splitlines()) == 1
