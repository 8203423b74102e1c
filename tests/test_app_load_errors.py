"""An app file that cannot be imported (a SyntaxError, a missing module, a NameError) costs
one line from every command that loads apps, `file:line: Error: message`; `-v` adds the
traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth_ai.cli import main

BROKEN = {
    "syntax": ("x = 1\ndef f(:\n    pass\n", 2, "SyntaxError: invalid syntax"),
    "missing": (
        '"""An app."""\nimport os\nimport no_such_module_zz\n',
        3,
        "ModuleNotFoundError: No module named 'no_such_module_zz'",
    ),
    "name": ("import os\n\nvalue = undefined_name + 1\n", 3, "NameError: name 'undefined_name'"),
}
COMMANDS = {
    "serve": ["serve"],
    "eval": ["eval", "--seeds", "0", "--offline-policy"],
    "check": ["check"],
    "deploy": ["deploy", "--dry-run"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_app_file_is_one_line(tmp_path: Path, command: str, kind: str) -> None:
    source, line, error = BROKEN[kind]
    app = tmp_path / f"broken_{kind}_{command}.py"
    app.write_text(source)
    result = CliRunner().invoke(main, [*COMMANDS[command], str(app)])
    lines = [text for text in result.output.splitlines() if text.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {app}:{line}: {error}"), lines[0]


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    app = tmp_path / "broken_verbose.py"
    app.write_text(BROKEN["name"][0])
    env = {**os.environ, "ENVIRONMENT_API_KEY": "k" * 24}
    shown = subprocess.run(
        [sys.executable, "-m", "synth_ai", "-v", "check", str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert shown.returncode == 1
    assert "Traceback (most recent call last)" in shown.stderr
    assert f'File "{app}", line 3' in shown.stderr
    assert shown.stderr.rstrip().endswith(
        f"Error: {app}:3: NameError: name 'undefined_name' is not defined"
    )
