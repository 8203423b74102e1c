"""`synth-ai init` makes a project whose own tests pass (through the pytest plugin) and whose
app scores above 0 with the offline policy; `assert_conforms` names what a broken app fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.eval import read_results
from synth_ai.testing import assert_conforms

from .conftest import make_config

EVAL = ["eval", "--seeds", "0-4", "--offline-policy"]


def test_init_makes_a_project_whose_tests_pass_and_whose_app_scores(tmp_path: Path) -> None:
    made = CliRunner().invoke(main, ["init", "my-env", "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    root = tmp_path / "my-env"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "my_env.py",
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
    assert "2 passed" in tests.stdout
    out = tmp_path / "results.jsonl"
    scored = CliRunner().invoke(
        main,
        [*EVAL, str(root / "my_env.py"), "--out", str(out), "--jobs-db", str(tmp_path / "j.db")],
    )
    assert scored.exit_code == 0, scored.output
    assert min(r.reward or 0.0 for r in read_results(out)) > 0


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
