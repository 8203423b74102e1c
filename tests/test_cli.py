"""The command line: version, serve (a real process on a loopback port) and the demo."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import httpx
from click.testing import CliRunner

from synth_ai import __version__
from synth_ai.cli import COMMANDS, main
from synth_ai.cli.env_file import read_env_file

from .conftest import KEY
from .processes import free_port, start_server, stop_server


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    module = subprocess.run(
        [sys.executable, "-m", "synth_ai", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in module.stdout


def test_serve_unknown_app_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serve", "no-such-app"])
    assert result.exit_code == 2
    assert "no task app named 'no-such-app'" in result.output


def test_env_file_parsing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\nexport A=1\nB = 'two words'\nC=x # trailing\n\n")
    assert read_env_file(env) == {"A": "1", "B": "two words", "C": "x"}


def test_serve_with_env_file_and_traces_then_the_traces_commands(
    tmp_path: Path, offline_policy_url: str
) -> None:
    trace_dir = tmp_path / "traces"
    env_file = tmp_path / "app.env"
    env_file.write_text(f"ENVIRONMENT_API_KEY={KEY}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ENVIRONMENT_API_KEY"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synth_ai",
            "serve",
            "math-single-step",
            "--port",
            str(port),
            "--env-file",
            str(env_file),
            "--trace",
            str(trace_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        output = []
        for line in process.stdout:  # wait for uvicorn to say it is listening
            output.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise AssertionError("serve exited early:\n" + "".join(output))
        assert KEY not in "".join(output)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/").json() == {"status": "ok", "service": "math"}
        health = httpx.get(f"{base}/health", headers={"X-API-Key": KEY})
        assert health.json()["tracing"]["db"] == str(trace_dir / "synth_ai.db")
        rollout = {
            "run_id": "cli-1",
            "env": {"seed": 0},
            "policy": {"config": {"model": "offline-policy", "inference_url": offline_policy_url}},
        }
        assert (
            httpx.post(f"{base}/rollout", json=rollout, headers={"X-API-Key": KEY}).json()[
                "metrics"
            ]["outcome_score"]
            == 1.0
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    # uvicorn re-raises SIGTERM after a graceful shutdown, which closed the trace writer
    assert "Application shutdown complete" in process.stdout.read()

    runner = CliRunner()
    db = ["--db", str(trace_dir / "synth_ai.db")]
    listed = runner.invoke(main, ["traces", "list", *db])
    assert listed.exit_code == 0 and "cli-1" in listed.output
    shown = runner.invoke(main, ["traces", "show", "cli-1", "--json", *db])
    assert shown.exit_code == 0 and json.loads(shown.output)["session_id"] == "cli-1"
    out = tmp_path / "sft.jsonl"
    exported = runner.invoke(main, ["traces", "export-sft", str(out), "--min-reward", "1", *db])
    assert exported.exit_code == 0 and "wrote 1 example" in exported.output
    assert json.loads(out.read_text())["messages"][-1]["tool_calls"]
    assert (trace_dir / "sft_examples.jsonl").read_text().count("\n") == 1
    missing = runner.invoke(main, ["traces", "show", "nope", *db])
    assert missing.exit_code == 1 and "no session 'nope'" in missing.output


def test_demo_runs_end_to_end_and_its_next_steps_work_pasted(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ENVIRONMENT_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "synth_ai", "demo", "--seeds", "12", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,  # where the next steps are pasted too
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "mean reward" in out and "offline stand-in for an LLM" in out
    assert re.search(r"Watch it .*\n +http://127\.0\.0\.1:\d+/ui/#login=\S+", out)
    assert "Watch it live (it stops with the run)" in out
    assert "the dashboard stopped with the run (its link is dead now)" in out
    job_id = re.search(r"job (job_[0-9a-f]+)", out).group(1)
    assert f"trace DB: {tmp_path / 'synth_ai.db'}" in out
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 12
    assert len((tmp_path / "sft_examples.jsonl").read_text().splitlines()) == 12

    # the next steps, pasted into a shell where synth-ai is not on PATH and no key is set
    steps = out.split("next (each line works pasted as it is):\n", 1)[1].splitlines()
    indented = itertools.takewhile(lambda line: line.startswith("  "), steps)
    script = "\n".join(line.strip() for line in indented)
    assert "jobs stream" in script and "traces export-sft" in script
    pasted = subprocess.run(
        ["bash", "-c", "set -e\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert f"stream {job_id}" not in pasted.stderr
    assert "state=running" in pasted.stdout and "state=succeeded" in pasted.stdout
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) > 0


DEMO = [sys.executable, "-m", "synth_ai", "demo"]


def test_demo_keeps_serving_its_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*DEMO, "--seeds", "2", "--pace", "0", "--keep-serving", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "ENVIRONMENT_API_KEY"},
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "serving until Ctrl-C" in line:
            break
    jobs_url = re.search(r"jobs server at (\S+)", "".join(seen)).group(1)
    page = httpx.get(f"{jobs_url}/ui/")
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert process.returncode == 0, "".join(seen) + rest
    assert "Traceback" not in rest


def hold_idle_connections(url: str, count: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    return [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]


def release(idle: list[socket.socket]) -> None:
    """Close each connection and wait until the server has closed its end too."""
    for sock in idle:
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""  # the server saw the close and dropped the connection
        sock.close()


def test_serve_logs_one_safe_access_line_and_caps_connections() -> None:
    process, url, output = start_server(["serve", "math", "--max-connections", "4"])
    try:
        assert httpx.get(f"{url}/x%0Afake%20line?token=SECRET&key=K2").status_code == 401
        idle = hold_idle_connections(url, 4)
        try:
            assert httpx.get(f"{url}/", timeout=10).status_code == 503
        finally:
            release(idle)
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
    finally:
        text = stop_server(process, output)
    assert "SECRET" not in text and "K2" not in text
    access = [line for line in text.splitlines() if re.search(r"GET /x\S* \d{3} ", line)]
    assert len(access) == 1, text  # ours; uvicorn's own access line is off
    assert "GET /x%0Afake%20line?token=***&key=*** 401" in access[0]
    assert "fake line" not in text  # nor did the auth warning decode the %0A into a new line
    assert not [line for line in text.splitlines() if line.startswith("fake")]


def test_jobs_serve_takes_the_same_cap_and_logs_through_the_app(tmp_path: Path) -> None:
    db = str(tmp_path / "jobs.db")
    process, url, output = start_server(["jobs", "serve", "--db", db, "--max-connections", "3"])
    try:
        stream = f"{url}/api/jobs/j1/stream?token=SECRET"
        assert httpx.get(stream).status_code == 401
        idle = hold_idle_connections(url, 3)
        try:
            assert httpx.get(f"{url}/", timeout=10).status_code == 503
        finally:
            release(idle)
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
    finally:
        text = stop_server(process, output)
    assert "SECRET" not in text
    assert [line for line in text.splitlines() if "/api/jobs/j1/stream" in line] != []


def test_help_lists_every_command_without_importing_any() -> None:
    """`synth-ai --help` stays fast: it reads the command table, not the command modules."""
    probe = (
        "import sys\n"
        "from synth_ai.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = set(sys.modules) - {'httpx._main'}  # the stand-in for httpx's CLI\n"
        "heavy = sorted(m for m in loaded if m.startswith(('synth_ai.task', 'synth_ai.jobs',"
        " 'rich', 'httpx', 'pydantic', 'starlette', 'uvicorn')))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    for name in COMMANDS:
        assert name in out


def test_the_command_table_matches_each_commands_own_help() -> None:
    context = click.Context(main)
    for name, (_, short) in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None
        assert command.get_short_help_str(limit=200) == short


def test_jobs_serve_without_a_key_says_nobody_can_sign_in(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ENVIRONMENT_API_KEY"}
    process, url, output = start_server(["jobs", "serve", "--db", str(tmp_path / "j.db")], env=env)
    try:
        assert httpx.get(f"{url}/api/jobs", timeout=10).status_code == 503
    finally:
        text = stop_server(process, output)
    assert f"Dashboard: {url}/ui/, but nobody can sign in: the API answers 503 until " in text
    assert "sign in with a key" not in text
