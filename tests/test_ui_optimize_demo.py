"""`synth-ai demo --optimize-only`: the short optimization on the jobs server it serves, watched
in chromium from the links it prints first (the job's page, then a candidate's transcripts in the
trace viewer, filtered by job and candidate), ending with the seed vs best table."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from .browser import Watched, chromium  # noqa: F401  (fixtures)
from .conftest import KEY

SERVING = "serving until Ctrl-C"


def start_demo(folder: Path) -> tuple[subprocess.Popen[str], str]:
    """The demo, with its servers kept up after the run; answers it and what it printed."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synth_ai",
            "demo",
            "--optimize-only",
            "--pace",
            "0",
            "--keep-serving",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if SERVING in line:
            return process, "".join(seen)
    process.wait(10)
    raise AssertionError("the demo ended early:\n" + "".join(seen))


def test_the_demo_optimization_on_its_dashboard_and_in_the_trace_viewer(
    tmp_path: Path,
    chromium: Any,  # noqa: F811
) -> None:
    process, printed = start_demo(tmp_path)
    try:
        dashboard = re.search(r"Watch it .*\n +(http://\S+/ui/#login=\S+)", printed)
        viewer = re.search(r"Transcripts .*\n +(http://\S+/ui/#login=\S+)", printed)
        watch = re.search(
            r"Watch the optimization: (http://\S+/ui/job\.html\?id=(job_\w+))", printed
        )
        assert dashboard and viewer and watch, printed
        # the links come before the run's first progress
        assert printed.index("Watch it") < printed.index("Watch the optimization")
        assert printed.index("Watch the optimization") < printed.index("seed prompt: validation")
        job_id = watch.group(2)

        watched = Watched(chromium.new_context())
        page = watched.page
        page.goto(viewer.group(1))
        page.wait_for_selector("#content:not([hidden])")
        page.goto(dashboard.group(1))
        page.wait_for_selector("#content:not([hidden])")
        page.goto(watch.group(1))
        page.wait_for_selector("#pl-result tr[data-split='test']")
        assert page.inner_text("#kind") == "prompt_learning"
        best = page.locator("#candidates tr.best")
        candidate = best.get_attribute("data-candidate")
        assert candidate and "★ best" in best.inner_text()

        # from the best candidate's row to the transcripts of its rollouts
        best.locator("a", has_text="transcripts").click()
        page.wait_for_selector("tr[data-session-id]")
        assert page.input_value("#candidate") == candidate and page.input_value("#job") == job_id
        sessions = page.eval_on_selector_all(
            "tr[data-session-id]", "rows => rows.map(r => r.dataset.sessionId)"
        )
        assert sessions and all(s.startswith(f"pl-{candidate}-{job_id}-") for s in sessions)

        # the same filter over the API: the job's rollouts, each candidate's its own
        session = httpx.Client(headers={"X-API-Key": KEY})
        api = viewer.group(1).split("/ui/")[0] + "/api/traces/sessions"
        everything = session.get(api, params={"job": job_id, "limit": 500}).json()["sessions"]
        mine = session.get(api, params={"candidate": candidate, "job": job_id}).json()["sessions"]
        assert {s["session_id"] for s in mine} == set(sessions)
        assert len(everything) > len(mine)
        assert all(f"-{job_id}-" in s["session_id"] for s in everything)
        hostile = session.get(api, params={"job": "x%' OR 1=1 --"})
        assert hostile.status_code == 422
        assert hostile.json()["detail"]["error"]["code"] == "invalid_request"
        assert not watched.errors, watched.errors
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    # it ends with the seed vs best table: seed, then best, scores on validation and test pool
    tail = rest.strip().splitlines()[-8:]
    assert "seed prompt vs best candidate" in "\n".join(tail)
    seed_row = next(line for line in tail if "│ seed" in line)
    best_row = next(line for line in tail if "│ best" in line)
    seed_test, best_test = (float(row.split("│")[3]) for row in (seed_row, best_row))
    assert best_test - seed_test >= 0.2
    assert rest.rstrip().endswith("┘")
