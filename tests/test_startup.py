"""What a process pays to start: the framework imports only what it uses (issue 15)."""

from __future__ import annotations

import subprocess
import sys


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
