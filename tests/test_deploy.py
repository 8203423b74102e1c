"""Deploying to Modal with the `modal` extra installed, no network and no token."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import modal
import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.deploy.settings import SETTINGS_VAR, ModalDeploySettings

from .conftest import KEY, InProcess

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-vendor-zqxjkvwmnzqxjkvw"


@pytest.fixture
def no_modal_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.modal.toml
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "modal.toml"))
    return tmp_path


def load_entry(monkeypatch: pytest.MonkeyPatch, settings: ModalDeploySettings) -> dict:
    """Import `modal_entry.py` afresh, as `modal deploy` would, with the CLI's settings."""
    monkeypatch.setenv(SETTINGS_VAR, settings.to_json())
    monkeypatch.delitem(sys.modules, "synth_ai.deploy.entry", raising=False)
    return runpy.run_path(str(ROOT / "modal_entry.py"))


def test_the_entry_builds_one_web_function_matching_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ModalDeploySettings(
        task_app="math-single-step",
        name="my-math",
        min_containers=1,
        max_containers=3,
        concurrency=8,
        timeout_s=900,
        cpu=2.0,
        memory_mb=4096,
        secret_names=("team-keys",),
    )
    entry = load_entry(monkeypatch, settings)
    app = entry["app"]
    assert app.name == "my-math"
    functions = [v for v in entry.values() if isinstance(v, modal.Function)]
    assert functions == [entry["web"]] and entry["web"]._is_web_endpoint()
    options = entry["function_kwargs"]
    assert {
        k: options[k] for k in ("min_containers", "max_containers", "timeout", "cpu", "memory")
    } == {
        "min_containers": 1,
        "max_containers": 3,
        "timeout": 900,
        "cpu": 2.0,
        "memory": 4096,
    }
    spec = entry["web"]._spec_
    assert (spec.cpu, spec.memory) == (2.0, 4096)
    assert [repr(s) for s in options["secrets"]] == ["modal.Secret.from_name('team-keys')"]
    defaults = load_entry(monkeypatch, ModalDeploySettings())
    assert (
        defaults["app"].name == "synth-math" and defaults["function_kwargs"]["min_containers"] == 0
    )


def test_the_asgi_factory_serves_health_with_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = load_entry(monkeypatch, ModalDeploySettings())
    client = InProcess(entry["build_task_app"]())
    assert client.get("/health").status_code == 401
    health = client.get("/health", headers={"X-API-Key": KEY})
    assert health.status_code == 200 and health.json()["service"] == "math"


def test_a_missing_token_is_a_clear_error(no_modal_token: Path) -> None:
    result = CliRunner().invoke(main, ["deploy", "math", "--runtime", "modal"])
    assert result.exit_code == 2
    assert "modal token new" in result.output


def test_dry_run_shows_names_never_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result = CliRunner().invoke(
        main, ["deploy", "math", "--dry-run", "--max-containers", "4", "--secret", "team-keys"]
    )
    assert result.exit_code == 0
    assert "modal deploy" in result.output and "modal_entry.py" in result.output
    assert "OPENAI_API_KEY" in result.output and "ENVIRONMENT_API_KEY" in result.output
    assert SECRET not in result.output and KEY not in result.output
    assert '"max_containers": 4' in result.output


def test_secrets_reach_the_entry_by_pipe_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in for the `modal` CLI (Modal's cloud is unreachable here) imports the real
    entry, as `modal deploy` does, and reports what it saw."""
    report = tmp_path / "report.json"
    stand_in = tmp_path / "modal_cli.py"
    stand_in.write_text(
        "import json, os, runpy, sys\n"
        "entry = runpy.run_path(sys.argv[2])\n"
        "secrets = [repr(s) for s in entry['function_kwargs']['secrets']]\n"
        "seen = {'env': dict(os.environ), 'argv': sys.argv, 'secrets': secrets}\n"
        f"json.dump(seen, open({str(report)!r}, 'w'))\n"
        "print('Created web function web => https://team--synth-math-web.modal.run')\n"
    )
    monkeypatch.setenv("SYNTH_MODAL_CLI", f"{sys.executable} {stand_in}")
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "synth_ai",
            "deploy",
            "math",
            "--runtime",
            "modal",
            "--min-containers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deployed: https://team--synth-math-web.modal.run" in result.stdout
    seen = json.loads(report.read_text())
    assert seen["argv"][1:] == ["deploy", str(ROOT / "modal_entry.py"), "--name", "synth-math"]
    assert json.loads(seen["env"][SETTINGS_VAR])["min_containers"] == 1
    assert seen["secrets"] == ["Secret.from_dict([ENVIRONMENT_API_KEY, OPENAI_API_KEY])"]
    for value in (KEY, SECRET):
        assert value not in json.dumps(seen["env"]), "a secret value reached the child's env"
        assert value not in result.stdout + result.stderr
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert value not in path.read_text(errors="ignore"), f"{path} holds a secret"


def test_local_runtime_and_unknown_apps() -> None:
    result = CliRunner().invoke(main, ["deploy", "nope", "--dry-run"])
    assert result.exit_code == 2 and "no task app named 'nope'" in result.output
    bad = CliRunner().invoke(main, ["deploy", "math", "--dry-run", "--volume", "data"])
    assert bad.exit_code == 2 and "/mount/path=volume-name" in bad.output
