"""The README's five-minute example runs as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from synth_ai.task import create_task_app, get_task_app

from .conftest import KEY, InProcess

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_guide_example_serves_rollouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_policy_url: str
) -> None:
    example = re.search(r"```python\n(# my_app\.py\n.*?)```", README.read_text(), re.S)
    assert example, "the README lost its my_app.py example"
    (tmp_path / "my_app.py").write_text(example.group(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_app", raising=False)
    __import__("my_app")
    app = create_task_app(get_task_app("echo").config_factory())
    body = {
        "run_id": "r1",
        "env": {"seed": 3},
        "policy": {"config": {"inference_url": offline_policy_url}},
    }
    response = InProcess(app).post("/rollout", json=body, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["metrics"]["outcome_score"] in (0.0, 1.0)
    assert data["pipeline_metadata"]["inference_url"].endswith("cid=r1")
    assert InProcess(app).get("/task_info?seed=3", headers={"X-API-Key": KEY}).status_code == 200


def readme_block(marker: str) -> str:
    block = re.search(rf"```\w+\n# {marker}\n(.*?)```", README.read_text(), re.S)
    assert block, f"the README lost its {marker} example"
    return block.group(1)


def test_the_stream_examples_run_as_written(tmp_path: Path) -> None:
    """The curl and Python examples of the jobs section, run against a real jobs server."""
    import os
    import subprocess

    from synth_ai.jobs import create_jobs_app
    from synth_ai.task import serve_in_background

    with serve_in_background(create_jobs_app(tmp_path / "jobs.db")) as url:
        env = {**os.environ, "JOBS_URL": url, "ENVIRONMENT_API_KEY": KEY}
        curl = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + readme_block("follow-with-curl")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert '"name":"avg_reward","value":0.62' in curl.stdout
        assert "event: end" in curl.stdout
        python = subprocess.run(
            [sys.executable, "-c", readme_block("follow-with-python")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert python.stdout.splitlines() == [
            "1 metric {'name': 'avg_reward', 'value': 0.62, 'step': 820}",
            "2 status {'state': 'succeeded', 'level': 'info'}",
        ]


def test_the_five_minute_guide_runs_as_written_and_scores(tmp_path: Path) -> None:
    """The guide end to end: its app file, its two `synth-ai` commands (ports moved to free
    ones), then its client, which scores the seed with the offline stand-in."""
    import os
    import subprocess

    from .processes import start_server, stop_server

    text = README.read_text()
    example = re.search(r"```python\n(# my_app\.py\n.*?)```", text, re.S)
    shell = re.search(
        r"Serve it, and call it:\n\n```bash\n(.*?)```\n\n```python\n(.*?)```", text, re.S
    )
    assert example and shell
    (tmp_path / "my_app.py").write_text(example.group(1))
    commands = [
        re.sub(r"\[[^]]*\]|&|--port \d+", "", line.split("#")[0]).split()[1:]
        for line in shell.group(1).splitlines()
        if line.startswith("synth-ai ")
    ]
    assert [c[:2] for c in commands] == [["policy", "serve"], ["serve", "my_app.py"]]
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    started = []
    try:
        for command in commands:
            started.append(start_server(command, env=env, cwd=tmp_path))
        (_, policy_url, _), (_, app_url, _) = started
        client = (
            shell.group(2)
            .replace("http://127.0.0.1:8001", app_url)
            .replace("http://127.0.0.1:8000", policy_url)
        )
        answer = subprocess.run(
            [sys.executable, "-c", client],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        for process, _, output in started:
            stop_server(process, output)
    assert "outcome_score=1.0" in answer.stdout, answer.stdout  # the stand-in said the seed


def test_the_plugin_example_passes_against_the_guide_app(tmp_path: Path) -> None:
    """The README's test file, beside the guide's app, passes under pytest with the plugin."""
    import os
    import subprocess

    text = README.read_text()
    app = re.search(r"```python\n(# my_app\.py\n.*?)```", text, re.S)
    assert app
    (tmp_path / "my_app.py").write_text(app.group(1))
    (tmp_path / "test_my_app.py").write_text(readme_block("test_my_app.py"))
    env = {k: v for k, v in os.environ.items() if k != "ENVIRONMENT_API_KEY"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


def test_the_init_steps_are_what_init_prints(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from synth_ai.cli import main

    block = re.search(r"```bash\n(synth-ai init my-env.*?)```", README.read_text(), re.S)
    assert block
    written = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    made = CliRunner().invoke(main, ["init", "my-env", "--dir", str(tmp_path)])
    printed = [line.strip() for line in made.output.splitlines()[1:]]
    assert written[1:] == [step.replace(str(tmp_path / "my-env"), "my-env") for step in printed]
    assert "make test   # ruff, mypy, then the test suite (pytest)" in README.read_text()
