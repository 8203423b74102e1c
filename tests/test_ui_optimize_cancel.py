"""Cancel, from the page of a `prompt_learning` job the jobs server runs itself: the run stops at
its next batch and the page shows what it kept (the best so far, no test-pool scores)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synth_ai.offline_policy import create_offline_policy_app
from synth_ai.optimize.config import parse_config
from synth_ai.optimize.job_kind import KIND, PromptLearningJob
from synth_ai.task import create_task_app, get_task_app, serve_in_background

from .browser import Watched, chromium  # noqa: F401  (fixtures)
from .conftest import KEY
from .test_optimize_e2e import config_text
from .test_ui_dashboard import JobsServerProcess


@pytest.fixture
def slow_stand_ins() -> Iterator[dict[str, str]]:
    """The stand-ins at a quarter second an answer, so a cancel lands mid-run."""
    config = get_task_app("math").config_factory()
    with (
        serve_in_background(create_offline_policy_app(latency_s=0.25)) as policy,
        serve_in_background(create_task_app(config)) as app,
    ):
        yield {"policy": policy, "app": app}


def test_cancel_from_the_page_keeps_the_best_so_far(
    tmp_path: Path,
    slow_stand_ins: dict[str, str],
    chromium: Any,  # noqa: F811
) -> None:
    server = JobsServerProcess(tmp_path / "jobs.db")
    server.start()
    try:
        text = config_text(slow_stand_ins["app"], slow_stand_ins["policy"], budget=400)
        section = parse_config(tomllib.loads(text)).prompt_learning
        section = section.model_copy(update={"task_app_api_key": KEY})
        config = PromptLearningJob(prompt_learning=section).model_dump(mode="json")
        job = server.post("/api/jobs", {"kind": KIND, "config": config})["job_id"]

        watched = Watched(chromium.new_context())
        page = watched.page
        page.goto(f"{server.url}/ui/job.html?id={job}")
        page.fill("#signin-key", KEY)
        page.keyboard.press("Enter")
        # the seed prompt scored: the run is under way
        page.wait_for_selector("#candidates tr[data-state='seed']", timeout=30_000)
        assert page.inner_text("#kind") == KIND
        page.click("#cancel")
        page.click("#cancel")  # the second press confirms
        page.wait_for_function(
            "() => document.getElementById('state').textContent.includes('canceled')"
        )
        result = page.locator("#pl-result tr[data-split='validation']")
        result.wait_for(timeout=30_000)
        assert result.locator("td").all_inner_texts()[0] != "\u2013"  # the seed's score
        test = page.locator("#pl-result tr[data-split='test'] td").all_inner_texts()
        assert test[:2] == ["\u2013", "\u2013"]  # a canceled run scores no test pool
        page.wait_for_function(
            "() => document.getElementById('pl-spend').textContent.includes('canceled')"
        )
        spend = page.inner_text("#pl-spend")
        assert "of 400 budget" in spend and "Test-pool rollouts\n0" in spend
        assert not watched.errors, watched.errors
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=10)
