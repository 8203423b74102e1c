"""Stopping and resuming, on the page: cancel from the page of a `prompt_learning` job the jobs
server runs itself (the run stops at its next batch and the page shows what it kept: the best
so far, no test-pool scores), and a resumed run's page starting from the candidates it carried
over."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.optimize_page import post_events
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
        # the files it kept are listed, for download
        page.locator("#artifacts a", has_text="best_prompt.json").wait_for(timeout=10_000)
        assert page.locator("#artifacts a", has_text="candidates.json").count() == 1
        assert not watched.errors, watched.errors
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=10)


def restored(ident: str, parent: str | None, accepted: bool, score: float | None) -> dict[str, Any]:
    return {
        "candidate_id": ident,
        "parent_id": parent,
        "accepted": accepted,
        "is_baseline": parent is None,
        "validation_score": score,
        "seeds": [10, 11] if accepted else [],
        "instance_scores": [score, score] if accepted else [],
        "rollouts_spent": 8 if parent is None else 20,
        "components_changed": [] if parent is None else ["system"],
        "sections": [{"role": "system", "content": f"prompt of {ident}"}] if accepted else None,
    }


def test_a_resumed_runs_page_starts_from_the_candidates_it_carried_over(
    tmp_path: Path,
    chromium: Any,  # noqa: F811
) -> None:
    server = JobsServerProcess(tmp_path / "jobs.db")
    server.start()
    try:
        job = server.post("/api/jobs", {})["job_id"]
        carried = [
            restored("cseed", None, True, 0.5),
            restored("cnope", "cseed", False, None),
            restored("cgood", "cseed", True, 0.75),
        ]
        start = {"budget": 60, "resumed": True, "restored_candidates": carried}
        start["seed_prompt"] = {"sections": [{"role": "system", "content": "prompt of cseed"}]}
        events = [
            {"type": "prompt.learning.gepa.start", "data": start},
            # gepa may score a carried-over candidate again: the same row, not a new one
            {
                "type": "prompt.learning.validation.scored",
                "data": {
                    "candidate_id": "cseed",
                    "accuracy": 0.5,
                    "is_baseline": True,
                    "instance_scores": [0.5, 0.5],
                    "seeds": [10, 11],
                    "rollouts_spent": 8,
                },
            },
        ]
        post_events(server.url, job, events, KEY)
        watched = Watched(chromium.new_context())
        page = watched.page
        page.goto(f"{server.url}/ui/job.html?id={job}")
        page.fill("#signin-key", KEY)
        page.keyboard.press("Enter")
        page.wait_for_selector("#candidates tr[data-candidate='cgood']")
        verdicts = page.locator("#candidates td.verdict").all_inner_texts()
        assert verdicts == ["■ seed", "✗ rejected", "✓ accepted ★ best"]
        assert page.get_attribute("figure.score-chart", "data-best") == "0.75"
        assert "cgood" in page.inner_text("#pl-diff p")
        assert [t.strip() for t in page.locator("#pl-diff ins").all_inner_texts()] == ["cgood"]
        assert not watched.errors, watched.errors
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=10)
