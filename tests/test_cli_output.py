"""What the servers print, as a user sees it: a banner once they listen, then exactly one access
line per request (uvicorn's own is off on every serving path), as text or as JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from synth_ai.task import create_task_app
from synth_ai.task.banner import banner_text, task_app_banner

from .conftest import KEY, make_config
from .processes import start_server, stop_server

ACCESS = re.compile(r"\b(GET|POST|HEAD) (/\S*) (\d{3}) [\d.]+ms cid=\S+$")
UVICORN_ACCESS = re.compile(r'"(GET|POST|HEAD) \S+ HTTP/1\.[01]" \d{3}')
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEADERS = {"X-API-Key": KEY}


def make_requests(url: str, count: int) -> None:
    """`count` requests of several kinds: answered, refused, unknown."""
    paths = ["/", "/health", "/info", "/nope", "/task_info?seed=1"]
    for n in range(count):
        headers = HEADERS if n % 3 else {}  # some without a key: refused, still logged once
        httpx.get(f"{url}{paths[n % len(paths)]}", headers=headers, timeout=10)


def access_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if ACCESS.search(line)]


def test_serve_prints_a_banner_then_one_access_line_per_request(tmp_path: Path) -> None:
    trace_dir = tmp_path / "traces"
    process, url, output = start_server(
        ["serve", "math", "--trace", str(trace_dir)], ready="  tracing: "
    )
    try:
        make_requests(url, 7)
    finally:
        text = stop_server(process, output)
    assert len(access_lines(text)) == 7, text
    assert not UVICORN_ACCESS.search(text)
    assert f"synth-ai task app math (Math task app) at {url}" in text
    assert "  routes: POST /rollout, GET /health, GET /info, GET /task_info, GET /, " in text
    assert "  auth: API key required (1 key(s) configured)" in text
    assert f"  tracing: SQLite {trace_dir / 'synth_ai.db'}; SFT JSONL in {trace_dir}" in text
    assert KEY not in text


def test_serve_with_reload_logs_one_access_line_per_request(tmp_path: Path) -> None:
    # cwd: the reloader watches it, and nothing changes there during the test
    process, url, output = start_server(
        ["serve", "math", "--reload"], ready="Application startup complete", cwd=tmp_path
    )
    try:
        make_requests(url, 5)
        httpx.get(f"{url}/after", timeout=10)  # its line comes after the others'
        process_output_has(output, "/after")
    finally:
        text = stop_server(process, output)
    assert len(access_lines(text)) == 6, text
    assert not UVICORN_ACCESS.search(text)
    assert f"synth-ai task app math (Math task app) at {url}" in text


def process_output_has(output: list[str], text: str, timeout_s: float = 10) -> None:
    """Wait (polling with a deadline) until a server has printed a line with `text`."""
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in list(output)):
        assert time.monotonic() < deadline, f"no line with {text!r}:\n{''.join(output)}"
        time.sleep(0.02)


def test_serve_log_format_json_writes_one_object_per_line(offline_policy_url: str) -> None:
    process, url, output = start_server(
        ["serve", "math", "--log-format", "json"], ready='"event": "startup"'
    )
    try:
        make_requests(url, 4)
        assert httpx.get(f"{url}/x%0Afake%20line?token=SECRET&key=K2").status_code == 401
        rollout = {
            "run_id": "json-1",
            "env": {"seed": 0},
            "policy": {"config": {"model": "offline-policy", "inference_url": offline_policy_url}},
        }
        assert httpx.post(f"{url}/rollout", json=rollout, headers=HEADERS).status_code == 200
        httpx.get(f"{url}/after")
        process_output_has(output, '"path": "/after"')
    finally:
        text = stop_server(process, output)
    records = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line
    for record in records:
        assert ISO_UTC.match(record["ts"]) and record["level"] and record["event"]
    access = [r for r in records if r["event"] == "access"]
    assert len(access) == 7
    forged = next(r for r in access if r["path"].startswith("/x"))
    assert forged["path"] == "/x%0Afake%20line?token=***&key=***"
    assert (forged["method"], forged["status"], forged["level"]) == ("GET", 401, "info")
    assert isinstance(forged["duration_ms"], float) and "cid" not in forged
    (rolled,) = [r for r in access if r["path"] == "/rollout"]
    assert (rolled["method"], rolled["status"], rolled["cid"]) == ("POST", 200, "json-1")
    (startup,) = [r for r in records if r["event"] == "startup"]
    assert startup["app_id"] == "math" and startup["url"] == url
    assert "POST /rollout" in startup["routes"]
    assert startup["auth"] == {"required": True, "keys_configured": 1}
    assert startup["tracing"]["enabled"] is False
    assert any("Uvicorn running on" in r.get("message", "") for r in records)
    for secret in ("SECRET", "K2", KEY):
        assert secret not in text


def test_jobs_serve_prints_a_banner_and_one_access_line_per_request(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    process, url, output = start_server(["jobs", "serve", "--db", str(db)], ready="  event log:")
    try:
        job = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
        httpx.get(f"{url}/api/jobs/{job}", headers=HEADERS)
        httpx.get(f"{url}/api/jobs?token=SECRET")  # refused: no key
        httpx.get(f"{url}/")
    finally:
        text = stop_server(process, output)
    assert len(access_lines(text)) == 4, text
    assert not UVICORN_ACCESS.search(text)
    assert f"synth-ai jobs server at {url}" in text
    assert "  auth: API key required (1 key(s) configured)" in text
    assert f"  event log: SQLite {db}; artifacts in {db.with_suffix('.artifacts')}" in text
    assert "SECRET" not in text and KEY not in text


def test_jobs_serve_log_format_json(tmp_path: Path) -> None:
    db = str(tmp_path / "jobs.db")
    process, url, output = start_server(
        ["jobs", "serve", "--db", db, "--log-format", "json"], ready='"event": "startup"'
    )
    try:
        httpx.get(f"{url}/")
        httpx.get(f"{url}/api/jobs", headers=HEADERS)
        process_output_has(output, '"path": "/api/jobs"')
    finally:
        text = stop_server(process, output)
    lines = [line for line in text.splitlines() if line.strip()]
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    # the rest is the dashboard's sign-in link, on stdout, for the person who started it
    assert all("Dashboard" in line or "/ui/#login=" in line for line in lines if line[0] != "{")
    assert [(r["path"], r["status"]) for r in logged if r["event"] == "access"] == [
        ("/", 200),
        ("/api/jobs", 200),
    ]
    (startup,) = [r for r in logged if r["event"] == "startup"]
    assert startup["server"] == "jobs" and startup["event_log"]["db"] == db


def test_the_banner_masks_a_database_password_and_shows_auth_off() -> None:
    url = "postgresql://synth:pw7secret@db.internal:5432/traces?password=other7secret"
    config = make_config(tracing=True, trace_db=url, require_api_key=False)
    fields = task_app_banner(create_task_app(config), "http://127.0.0.1:1")
    text = banner_text(fields) + json.dumps(fields)
    assert "pw7secret" not in text and "other7secret" not in text
    assert "tracing: PostgreSQL postgresql://synth:***@db.internal:5432/traces?password=***" in text
    assert "auth: off: every route is open" in text


def test_the_demo_prints_no_access_lines_and_its_traces_are_where_traces_looks(
    tmp_path: Path,
) -> None:
    """One default trace path: the demo (no --dir) writes where `traces list` reads."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ENVIRONMENT_API_KEY", "TASKAPP_TRACE_DB", "TASKAPP_TRACING_ENABLED")
    }
    demo = subprocess.run(
        [sys.executable, "-m", "synth_ai", "demo", "--seeds", "3", "--pace", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    printed = demo.stdout + demo.stderr
    assert not UVICORN_ACCESS.search(printed) and not access_lines(printed)
    assert "trace DB: traces/v3/synth_ai.db" in demo.stdout
    assert re.search(r"ran\W+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ for", demo.stdout)
    listed = subprocess.run(
        [sys.executable, "-m", "synth_ai", "traces", "list", "--json", "--limit", "10000"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    sessions = json.loads(listed.stdout)["sessions"]
    optimized = [s for s in sessions if s["session_id"].startswith("pl-")]  # the optimization's
    assert len(sessions) - len(optimized) == 3 and optimized


def test_serve_trace_keeps_the_sft_directory_the_environment_names(tmp_path: Path) -> None:
    trace_dir, sft_dir = tmp_path / "traces", tmp_path / "sft"
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY, "TASKAPP_SFT_OUTPUT_DIR": str(sft_dir)}
    process, _, output = start_server(
        ["serve", "math", "--trace", str(trace_dir)], env=env, ready="  tracing: "
    )
    text = stop_server(process, output)
    assert f"  tracing: SQLite {trace_dir / 'synth_ai.db'}; SFT JSONL in {sft_dir}" in text
