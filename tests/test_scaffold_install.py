"""Acceptance: a project made by `synth-ai init` installs into a fresh virtualenv from this
checkout (its dependency names the checkout, not the index's other `synth-ai`), and its own
tests pass there against its scripted stand-in policy, with the pytest plugin of that install.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth_ai.cli import main

from .test_deploy_wheel import STEP_TIMEOUT_S, outside_environment, uv

ROOT = Path(__file__).resolve().parents[1]


def test_a_scaffolded_tool_using_app_installs_and_passes_its_tests(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home").mkdir()
    env = outside_environment(tmp_path / "home", tmp_path_factory.getbasetemp().parent / "uv-cache")
    env.pop("ENVIRONMENT_API_KEY")
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(main, ["init", "stock-env"])
    assert made.exit_code == 0, made.output
    project = tmp_path / "stock-env"
    assert f'"synth-ai @ {ROOT.as_uri()}"' in (project / "pyproject.toml").read_text()
    venv = tmp_path / "venv"
    uv("venv", "--python", sys.executable, str(venv), env=env)
    uv("pip", "install", "--python", str(venv / "bin" / "python"), "-e", f"{project}[dev]", env=env)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import synth_ai; print(synth_ai.__file__)"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    tests = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
