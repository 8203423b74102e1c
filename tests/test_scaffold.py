"""`synth-ai init` makes a project whose own tests pass (through the pytest plugin, against its
scripted stand-in policy) and whose app scores with that policy; its next steps work from the
project folder; it depends on synth-ai as synth-ai was installed; `assert_conforms` names what
a broken app fails."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synth_ai import __version__
from synth_ai.cli import main
from synth_ai.eval import read_results
from synth_ai.scaffold import create_project
from synth_ai.scaffold.requirement import requirement_from
from synth_ai.testing import assert_conforms

from .conftest import make_config

ROOT = Path(__file__).resolve().parents[1]
EVAL = ["eval", "--seeds", "0-4", "--policy-script"]


def test_init_makes_a_project_whose_tests_pass_and_whose_app_scores(tmp_path: Path) -> None:
    made = CliRunner().invoke(main, ["init", "my-env", "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    root = tmp_path / "my-env"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "my_env.py",
        "policy_script.py",
        "pyproject.toml",
        "tests/test_app.py",
    ]
    env = {k: v for k, v in os.environ.items() if k != "ENVIRONMENT_API_KEY"}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    out = tmp_path / "results.jsonl"
    scored = CliRunner().invoke(
        main,
        [
            *EVAL,
            str(root / "policy_script.py"),
            str(root / "my_env.py"),
            "--out",
            str(out),
            "--jobs-db",
            str(tmp_path / "j.db"),
        ],
    )
    assert scored.exit_code == 0, scored.output
    assert min(r.reward or 0.0 for r in read_results(out)) == 1.0


def test_the_next_steps_run_from_the_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(main, ["init", "steps-env"])
    assert made.exit_code == 0, made.output
    steps = [line.strip() for line in made.output.splitlines()[1:]]
    assert steps == [
        "cd steps-env",
        "pip install -e '.[dev]'",
        "pytest",
        "synth-ai check steps_env.py --policy-script policy_script.py",
    ]
    monkeypatch.chdir(tmp_path / "steps-env")
    checked = CliRunner().invoke(main, steps[-1].split()[1:])
    assert checked.exit_code == 0, checked.output
    readme = Path("README.md").read_text()
    assert steps[-1] in readme and "pip install -e '.[dev]'" in readme


@pytest.mark.parametrize(
    ("direct_url", "written"),
    [
        (None, f"synth-ai=={__version__}"),
        (
            {"url": "file:///src/synth-ai", "dir_info": {"editable": True}},
            "synth-ai @ file:///src/synth-ai",
        ),
        (
            {"url": "file:///w/synth_ai-0.3.0-py3-none-any.whl", "archive_info": {}},
            "synth-ai @ file:///w/synth_ai-0.3.0-py3-none-any.whl",
        ),
        (
            {
                "url": "https://github.com/synth-laboratories/synth-ai.git",
                "vcs_info": {"vcs": "git", "commit_id": "0123abc", "requested_revision": "main"},
                "subdirectory": "py",
            },
            "synth-ai @ git+https://github.com/synth-laboratories/synth-ai.git@0123abc"
            "#subdirectory=py",
        ),
    ],
)
def test_the_dependency_is_written_as_synth_ai_was_installed(
    direct_url: dict[str, Any] | None, written: str, tmp_path: Path
) -> None:
    assert requirement_from(direct_url) == written
    root = create_project("dep-env", tmp_path, requirement=requirement_from(direct_url))
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == [written]


def test_this_install_is_written_as_its_direct_url(tmp_path: Path) -> None:
    root = create_project("here-env", tmp_path)
    (written,) = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert written == f"synth-ai @ {ROOT.as_uri()}"  # the dev venv installs this checkout


def test_init_never_overwrites_and_refuses_bad_names(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["init", "app", "--dir", str(tmp_path)]).exit_code == 0
    (tmp_path / "app" / "app.py").write_text("# mine")
    again = CliRunner().invoke(main, ["init", "app", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert (tmp_path / "app" / "app.py").read_text() == "# mine"
    bad = CliRunner().invoke(main, ["init", "../escape", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and not (tmp_path.parent / "escape").exists()


def test_assert_conforms_names_the_checks_a_broken_app_fails() -> None:
    def broken(request: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    assert_conforms(make_config())  # the echo app conforms
    with pytest.raises(AssertionError, match=r"contract check\(s\) failed") as info:
        assert_conforms(make_config(rollout=broken))
    assert "rollout" in str(info.value)
