"""What a process pays to start: the framework imports only what it uses (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from .conftest import KEY, auth_headers
from .processes import start_server, stop_server


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def test_importing_the_framework_loads_no_terminal_ui() -> None:
    """httpx's own CLI (rich, pygments) stays out of servers and clients alike."""
    loaded = run(
        "import sys, synth_ai.task, synth_ai.jobs, httpx\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pygments'}))"
    )
    assert loaded.strip() == "[]"


def test_httpx_command_line_still_works_when_called() -> None:
    out = run(
        "import synth_ai, httpx\ntry:\n    httpx.main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "A next generation HTTP client" in out


REPORTING_APP = """
import dataclasses, sys
from synth_ai.examples.math_task_app import build_config as math_config, rollout as math_rollout


async def rollout(request, context):
    response = await math_rollout(request, context)
    response.pipeline_metadata["modules"] = sorted({name.split(".")[0] for name in sys.modules})
    return response


def build_config():
    return dataclasses.replace(math_config(), app_id="reporting", rollout=rollout)
"""
NEVER_WHEN_SERVING = {
    "opentelemetry",
    "psycopg",
    "sqlite3",
    "rich",
    "pygments",
    "pydantic_settings",
}
"""Tracing off: nothing of the trace stores or OpenTelemetry; no terminal UI; no settings
library (`synth_ai/settings.py` says why). Click stays: uvicorn's package imports it."""


def test_serving_with_tracing_off_loads_no_store_exporter_or_terminal_ui(
    tmp_path: Path, offline_policy_url: str
) -> None:
    app_file = tmp_path / "reporting_app.py"
    app_file.write_text(REPORTING_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKAPP_", "OTEL_"))}
    process, url, output = start_server(
        ["serve", f"{app_file}:build_config"], env={**env, "ENVIRONMENT_API_KEY": KEY}, cwd=tmp_path
    )
    try:
        body = {
            "run_id": "modules",
            "env": {"seed": 1},
            "policy": {"config": {"inference_url": offline_policy_url}},
        }
        answer = httpx.post(f"{url}/rollout", json=body, headers=auth_headers(), timeout=30)
    finally:
        stop_server(process, output)
    assert answer.status_code == 200, answer.text
    loaded = set(answer.json()["pipeline_metadata"]["modules"])
    assert "synth_ai" in loaded and "httpx" in loaded  # the report is real
    assert loaded & NEVER_WHEN_SERVING == set()


def test_an_app_that_never_calls_out_never_loads_httpx() -> None:
    loaded = run(
        "import sys\n"
        "from synth_ai.task import create_task_app\n"
        "from synth_ai.examples.math_task_app import build_config\n"
        "create_task_app(build_config())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore')))"
    )
    assert loaded.strip() == "['httpx._main']"  # only the stand-in for httpx's CLI
