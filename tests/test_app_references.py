"""Every command that takes an app takes a registered name, a file or `module:attribute`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.task.references import AppNotFound, find_task_app
from synth_ai.task.registry import registry

from .conftest import KEY
from .processes import start_server, stop_server

README = Path(__file__).resolve().parents[1] / "README.md"

ECHO = """
from synth_ai.task import (
    RolloutResponse, RolloutStep, RolloutTrajectory, TaskAppConfig, TaskAppEntry,
    TaskDescriptor, TaskInfo, register_task_app,
)


def make(app_id):
    base = TaskInfo(task=TaskDescriptor(id=app_id, name=app_id), environment=app_id)

    def rollout(request, context):
        seed = request.env.seed or 0
        return RolloutResponse(trajectories=[RolloutTrajectory(
            env_id=context.env_id, policy_id=context.policy_id,
            steps=[RolloutStep(obs={}, reward=1.0, done=True)])],
            metrics={"episode_returns": [1.0], "outcome_score": 1.0, "num_steps": 1})

    def build_config():
        return TaskAppConfig(app_id=app_id, name=app_id, description="d", base_task_info=base,
                             rollout=rollout)

    return build_config
"""


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three app files; the tests share one process (and registry), so each test's modules
    are dropped afterwards."""
    (tmp_path / "single_app.py").write_text(
        ECHO + "\nbuild_config = make('single')\n"
        "ENTRY = register_task_app(TaskAppEntry(app_id='single', config_factory=build_config))\n"
    )
    (tmp_path / "two_apps.py").write_text(
        ECHO + "\nregister_task_app(TaskAppEntry(app_id='first', config_factory=make('first')))"
        "\nregister_task_app(TaskAppEntry(app_id='second', config_factory=make('second')))\n"
    )
    (tmp_path / "factory_only.py").write_text(
        ECHO + "\nbuild_config = make('plain')\nCONFIG = make('given')()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.discover()  # installed apps stay registered after the test
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_names", dict(registry._names))
    for name in ("single_app", "two_apps", "factory_only"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_a_file_a_module_attribute_and_a_name_each_find_the_app(app_dir: Path) -> None:
    by_file = find_task_app(str(app_dir / "single_app.py"))
    assert by_file.app_id == "single"
    assert find_task_app("single_app:ENTRY") is by_file
    assert find_task_app("single") is by_file  # registered by loading the file
    assert find_task_app("single_app:build_config").app_id == "single"
    plain = find_task_app(f"{app_dir / 'factory_only.py'}:build_config")
    assert plain.config_factory().app_id == "plain"


def test_a_config_named_as_an_attribute_is_found_again(app_dir: Path) -> None:
    reference = f"{app_dir / 'factory_only.py'}:CONFIG"
    first = find_task_app(reference)
    assert first.app_id == "given" and first.config_factory().app_id == "given"
    assert find_task_app(reference) is first  # `serve` resolves its reference twice
    process, url, output = start_server(["serve", reference])
    try:
        health = httpx.get(f"{url}/health", headers={"X-API-Key": KEY})
        assert health.status_code == 200 and health.json()["service"] == "given"
    finally:
        stop_server(process, output)


def test_a_file_is_found_without_loading_installed_apps(app_dir: Path) -> None:
    """The math example is installed as an entry point; serving a file must not import it."""
    probe = (
        "import sys; from synth_ai.task.references import find_task_app; "
        f"find_task_app({str(app_dir / 'single_app.py')!r}); "
        "print('synth_ai.examples.math_task_app' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
    by_name = probe.replace(repr(str(app_dir / "single_app.py")), "'math'")
    done = subprocess.run([sys.executable, "-c", by_name], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr  # the same probe sees a discovery


def test_a_file_with_several_apps_lists_the_choices(app_dir: Path) -> None:
    path = app_dir / "two_apps.py"
    with pytest.raises(AppNotFound) as info:
        find_task_app(str(path))
    assert f"{path}:first" in str(info.value) and f"{path}:second" in str(info.value)
    assert find_task_app(f"{path}:second").app_id == "second"


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("nowhere.py", "no file 'nowhere.py'"),
        ("factory_only.py", "defines no task app"),
        ("single_app:missing", "has no attribute 'missing'"),
        ("no_such_module_here:x", "no module 'no_such_module_here'"),
        ("not-an-app", "no task app named 'not-an-app'"),
    ],
)
def test_a_reference_that_names_no_app_says_why(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch, reference: str, says: str
) -> None:
    monkeypatch.chdir(app_dir)
    with pytest.raises(AppNotFound, match=re.escape(says)):
        find_task_app(reference)


def test_serve_and_eval_take_a_file(app_dir: Path) -> None:
    process, url, output = start_server(["serve", str(app_dir / "single_app.py")])
    try:
        health = httpx.get(f"{url}/health", headers={"X-API-Key": KEY})
        assert health.status_code == 200 and health.json()["service"] == "single"
    finally:
        stop_server(process, output)
    out = app_dir / "r.jsonl"
    result = CliRunner().invoke(
        main,
        ["eval", f"{app_dir / 'two_apps.py'}:first", "--seeds", "0-2", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output


def test_reload_serves_a_file_and_stops(app_dir: Path) -> None:
    process, url, output = start_server(
        ["serve", str(app_dir / "single_app.py"), "--reload"],
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY, "PYTHONPATH": os.pathsep.join(sys.path)},
        ready="Application startup complete",  # the reloader's child serves, not the parent
    )
    try:
        health = httpx.get(f"{url}/health", headers={"X-API-Key": KEY})
        assert health.status_code == 200 and health.json()["service"] == "single"
    finally:
        stop_server(process, output)  # the reloader and its child both exit
    assert process.returncode is not None


def test_the_readme_entry_point_recipe_names_what_its_example_defines() -> None:
    text = README.read_text()
    example = re.search(r"```python\n(# my_app\.py\n.*?)```", text, re.S)
    recipe = re.search(r'echo = "my_app:(\w+)"', text)
    assert example and recipe
    assert re.search(rf"^{recipe.group(1)} = ", example.group(1), re.M)


def test_apps_lists_what_is_registered() -> None:
    result = CliRunner().invoke(main, ["apps"])
    assert result.exit_code == 0
    assert any(line.startswith("math ") for line in result.output.splitlines())


def test_a_config_factory_that_raises_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text(
        "def build_config():\n    raise RuntimeError('no dataset at /data')\n"
    )
    reference = f"{tmp_path / 'broken_app.py'}:build_config"
    for verbose in ([], ["-v"]):
        result = subprocess.run(
            [sys.executable, "-m", "synth_ai", *verbose, "serve", reference],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
        )
        assert result.returncode == 1
        assert "RuntimeError: no dataset at /data" in result.stderr
        assert "build_config" in result.stderr
        assert ("Traceback" in result.stderr) == bool(verbose)  # the traceback only with -v


def test_check_takes_an_app_file_and_serves_it(app_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["check", str(app_dir / "single_app.py"), "--offline-policy", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert '"passed": true' in result.output
