"""A prompt-learning job's page in a real browser, live from a real optimization: the math app
and the offline stand-ins (policy and reflection; labelled fakes, no LLM here) on loopback, the
optimizer in this process posting its events to a `synth-ai jobs serve` process, which is killed
and started again mid-run. Named delay points hold the optimizer right after chosen events, so
the test sees the page between steps without sleeping."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.optimize_page import post_events, synthetic_events
from synth_ai.jobs import RemoteEmitter
from synth_ai.offline_policy import create_offline_policy_app
from synth_ai.optimize.config import parse_config
from synth_ai.optimize.interceptor import Interceptor
from synth_ai.optimize.job_kind import sections_of
from synth_ai.optimize.run import OptimizeRun
from synth_ai.task import create_task_app, get_task_app, serve_in_background

from .browser import Watched, chromium, screenshots  # noqa: F401  (fixtures)
from .conftest import KEY
from .test_optimize_e2e import config_text
from .test_ui_dashboard import JobsServerProcess

DOCS = Path(__file__).parent.parent / "docs"
TRACE_VIEWER = "http://127.0.0.1:8003"


class Gate:
    """A named delay point: the optimizer's thread stops right after it emits an event that
    `matches`, until the test calls `go`."""

    def __init__(self, type: str, baseline: bool) -> None:
        self.type, self.baseline = type, baseline
        self.reached, self.released = threading.Event(), threading.Event()

    def matches(self, type: str, data: dict[str, Any]) -> bool:
        return type == self.type and bool(data.get("is_baseline")) == self.baseline

    def wait(self) -> None:
        assert self.reached.wait(60), f"the run never sent {self.type}"

    def go(self) -> None:
        self.released.set()


class GatedEmitter(RemoteEmitter):
    """The optimizer's events to the jobs server (retried across its restart), stopping at
    the gates; `emit_committed` (the run's status changes) waits until the server stored it."""

    gates: list[Gate]

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        super().emit(type, message=message, level=level, data=data)
        for gate in self.gates:
            if not gate.reached.is_set() and gate.matches(type, data or {}):
                gate.reached.set()
                assert gate.released.wait(120)

    async def emit_committed(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.emit(type, message=message, level=level, data=data)
        await asyncio.to_thread(self.flush, 60)


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[dict[str, str]]:
    config = get_task_app("math").config_factory()
    with (
        serve_in_background(create_offline_policy_app()) as policy,
        serve_in_background(create_task_app(config)) as app,
    ):
        yield {"policy": policy, "app": app}


def optimize(emitter: GatedEmitter, stand_ins: dict[str, str], folder: Path) -> dict[str, Any]:
    """The run `synth-ai optimize` makes, its events going to `emitter`."""
    text = config_text(stand_ins["app"], stand_ins["policy"])
    section = parse_config(tomllib.loads(text)).prompt_learning
    initial = section.initial_prompt.build()

    async def run() -> dict[str, Any]:
        interceptor = Interceptor(initial, section.policy.inference_url, model=section.policy.model)
        async with interceptor:
            return await OptimizeRun(
                section,
                interceptor=interceptor,
                seed_candidate=initial.seed_candidate(),
                to_sections=sections_of(initial),
                folder=folder,
                emitter=emitter,  # type: ignore[arg-type]
                api_key=KEY,
            ).run()

    return asyncio.run(run())


def rows(page: Any) -> int:
    return int(page.locator("#candidates tbody tr").count())


def best_line(page: Any) -> float:
    return float(page.get_attribute("figure.score-chart", "data-best") or "nan")


def test_the_page_follows_an_optimization_across_a_server_restart(
    tmp_path: Path,
    stand_ins: dict[str, str],
    chromium: Any,  # noqa: F811
    screenshots: Path,  # noqa: F811
) -> None:
    server = JobsServerProcess(tmp_path / "jobs.db")
    server.start()
    emitter = GatedEmitter.create_job(
        server.url, KEY, metadata={"trace_viewer_url": TRACE_VIEWER}, backoff_s=0.05
    )
    seed_scored = Gate("prompt.learning.gepa.new_best", baseline=True)
    improved = Gate("prompt.learning.gepa.new_best", baseline=False)
    emitter.gates = [seed_scored, improved]
    summary: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: summary.update(optimize(emitter, stand_ins, tmp_path / "run")), daemon=True
    )
    try:
        context = chromium.new_context(accept_downloads=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        watched = Watched(context)
        page = watched.page
        page.goto(server.sign_in_link())
        page.wait_for_selector("#content:not([hidden])")
        page.goto(f"{server.url}/ui/job.html?id={emitter.job_id}")
        page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")
        runner.start()

        # the seed prompt scored: its row, its square, the best line at its score
        seed_scored.wait()
        seed_row = page.locator("#candidates tr[data-state='seed']")
        seed_row.wait_for(timeout=10_000)
        assert "■ seed" in seed_row.inner_text()
        page.wait_for_selector("figure.score-chart rect.seed-point")
        seed_score = best_line(page)
        assert 0 <= seed_score < 1
        seen_at_seed = rows(page)
        seed_scored.go()

        # a better candidate: more rows, a circle above the seed, the best line risen
        improved.wait()
        page.wait_for_function(
            "s => Number(document.querySelector('figure.score-chart').dataset.best) > s",
            arg=seed_score,
            timeout=10_000,
        )
        assert rows(page) > seen_at_seed
        assert page.locator("circle.candidate-point").count() >= 1
        accepted = page.locator("#candidates tr[data-state='accepted']").first
        assert "✓ accepted" in accepted.inner_text()
        candidate = accepted.get_attribute("data-candidate")
        link = accepted.locator("a", has_text="transcripts").get_attribute("href")
        assert link == f"{TRACE_VIEWER}/ui/?job={emitter.job_id}&candidate={candidate}"

        # the jobs server dies and comes back while the run goes on
        server.kill()
        page.wait_for_function("() => document.getElementById('stream').textContent !== 'live'")
        server.start()
        improved.go()
        runner.join(120)
        assert summary, "the optimization did not finish"

        # the end: seed against best on the test pool at the top, the diff, spend
        result = page.locator("#pl-result tr[data-split='test']")
        result.wait_for(timeout=20_000)
        seed_test, best_test = summary["seed_score"]["test"], summary["best_score"]["test"]
        cells = result.locator("td").all_inner_texts()
        assert float(cells[0]) == pytest.approx(seed_test, abs=1e-3)
        assert float(cells[1]) == pytest.approx(best_test, abs=1e-3)
        assert cells[2].startswith("+")
        page.wait_for_function(
            "() => document.getElementById('stream').textContent === 'ended (the job is over)'"
        )
        added = " ".join(page.locator("#pl-diff ins").all_inner_texts()).lower()
        assert "exact fraction" in added  # what the stand-in's reflection taught the prompt
        assert page.locator("#pl-diff del").count() == 0 or "mathematician" not in " ".join(
            page.locator("#pl-diff del").all_inner_texts()
        )
        spend = page.inner_text("#pl-spend")
        budget = summary["rollouts"]["budget"]
        assert f"{summary['rollouts']['search']} of {budget} budget" in spend
        assert f"{summary['tokens']['policy']['prompt']:,}" in spend
        tree = page.inner_text("#pl-tree")
        assert summary["best_candidate_id"] in tree
        final_rows = rows(page)
        assert final_rows == summary["candidates"]["attempted"]
        pareto = page.inner_text("#pl-pareto")
        assert "★" in pareto and summary["best_candidate_id"] in pareto
        assert "seed 10" in pareto and "seed 17" in pareto  # the validation seeds, by name

        # copy and download give the best prompt
        page.click("#pl-copy")
        page.wait_for_function("() => document.getElementById('pl-copied').textContent")
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert "exact fraction" in copied.lower()
        with page.expect_download() as download:
            page.click("#pl-download")
        stored = json.loads(Path(download.value.path()).read_text())
        assert download.value.suggested_filename == "best_prompt.json"
        kept = json.loads((tmp_path / "run" / "best_prompt.json").read_text())
        assert stored == kept  # as the run's own file

        page.screenshot(path=screenshots / "optimize-page.png", full_page=True)
        if os.environ.get("SYNTH_UPDATE_DOCS") == "1":
            shutil.copy(screenshots / "optimize-page.png", DOCS / "optimize-page.png")
        assert not watched.errors, watched.errors
        assert KEY not in page.content()
    finally:
        for gate in emitter.gates:
            gate.go()
        emitter.close(10)
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=10)


DASH, MINUS = "\u2013", "\u2212"  # how the page writes "no value" and "removed"
HOSTILE = '<img src=x onerror="window.__xss=1"></script><script>window.__xss=2</script>'


@pytest.fixture(scope="module")
def synthetic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsServerProcess]:
    server = JobsServerProcess(tmp_path_factory.mktemp("optimize-page") / "jobs.db")
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=10)


def synthetic_job(server: JobsServerProcess, events: list[dict[str, Any]]) -> str:
    job = server.post("/api/jobs", {"metadata": {"trace_viewer_url": TRACE_VIEWER}})["job_id"]
    post_events(server.url, job, events, KEY)
    return str(job)


def open_job(chromium: Any, server: JobsServerProcess, job: str) -> Watched:  # noqa: F811
    """The job's page, signed in with the key typed into its form (a printed link works once)."""
    watched = Watched(chromium.new_context())
    watched.page.goto(f"{server.url}/ui/job.html?id={job}")
    watched.page.fill("#signin-key", KEY)
    watched.page.keyboard.press("Enter")
    watched.page.wait_for_selector("#content:not([hidden])")
    return watched


def test_candidate_texts_are_shown_as_text_never_as_html(
    synthetic_server: JobsServerProcess,
    chromium: Any,  # noqa: F811
) -> None:
    events = synthetic_events(10, instruction=HOSTILE)
    for event in events:
        data = event["data"]
        if event["type"] == "prompt.learning.proposal.scored" and not data["accepted"]:
            data["components_changed"] = ["<i>system</i>"]
            data["reason"] = "<svg onload=window.__xss=3>"
    malformed = [  # payloads of the wrong shape: skipped or shown as they are, never a crash
        {"type": "prompt.learning.validation.scored", "data": {"candidate_id": 5}},
        {"type": "prompt.learning.best.prompt", "data": {"best_prompt": {"sections": "x"}}},
        {"type": "prompt.learning.progress", "data": {"tokens": {"unpriced_models": "m"}}},
        {"type": "prompt.learning.final.results", "data": {"seed_score": None}},
        {
            "type": "prompt.learning.proposal.scored",
            "data": {
                "candidate_id": "cbad",
                "sections": [None, 5],
                "components_changed": "system",
                "instance_scores": "abc",
                "minibatch_score": "1",
            },
        },
    ]
    job = synthetic_job(synthetic_server, events + malformed)
    watched = open_job(chromium, synthetic_server, job)
    page = watched.page
    page.wait_for_function("() => document.querySelectorAll('#candidates tbody tr').length === 12")
    page.wait_for_selector("#pl-diff ins")
    assert HOSTILE in page.inner_text("#pl-diff")  # literally, every character
    assert "<i>system</i>" in page.inner_text("#candidates")
    assert "<svg onload=window.__xss=3>" in page.inner_text("#candidates")
    optimization = page.locator("#optimization")
    for tag in ("img", "script", "i", "svg:not(.score-plot)"):
        assert optimization.locator(tag).count() == 0, tag
    assert page.evaluate("() => window.__xss") is None
    assert not watched.errors, watched.errors


def test_sortable_by_keyboard_with_every_state_in_words(
    synthetic_server: JobsServerProcess,
    chromium: Any,  # noqa: F811
) -> None:
    job = synthetic_job(synthetic_server, synthetic_events(20))
    watched = open_job(chromium, synthetic_server, job)
    page = watched.page
    page.wait_for_function("() => document.querySelectorAll('#candidates tbody tr').length === 21")

    # Tab reaches every control: the sort buttons, copy, download, a transcripts link, cancel
    page.focus("#cancel")
    reached = set()
    for _ in range(80):
        page.keyboard.press("Tab")
        reached.add(
            page.evaluate(
                "() => { const e = document.activeElement;"
                " return e.id || e.dataset.sort || e.textContent.trim(); }"
            )
        )
    wanted = {"pl-copy", "pl-download", "validation", "rollouts", "order", "transcripts"}
    assert wanted <= reached, reached

    def order() -> list[str]:
        return [
            str(r)
            for r in page.eval_on_selector_all(
                "#candidates tbody tr", "rows => rows.map(r => r.dataset.candidate)"
            )
        ]

    def validations() -> list[str]:
        return page.locator("#candidates tbody tr td:nth-child(6)").all_inner_texts()

    header = "th[data-key='validation']"
    page.focus(f"{header} button")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector(\"{header}\").ariaSort === 'descending'")
    scores = [float(v) for v in validations() if v != DASH]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5  # the seed and 4 accepted
    assert validations()[len(scores) :] == [DASH] * 16  # rejected: no validation score, last
    assert order()[0] == "c0020"
    page.keyboard.press("Space")
    page.wait_for_function(f"() => document.querySelector(\"{header}\").ariaSort === 'ascending'")
    scores = [float(v) for v in validations() if v != DASH]
    assert scores == sorted(scores) and order()[0] == "seed"

    # states in words and marks, not colour alone
    verdicts = page.locator("#candidates td.verdict").all_inner_texts()
    assert verdicts.count("✗ rejected") == 16
    assert "■ seed" in verdicts and "✓ accepted ★ best" in verdicts
    assert sum(v.startswith("✓ accepted") for v in verdicts) == 4
    assert "★" in page.inner_text("#pl-pareto")
    marks = page.evaluate(
        "() => ['ins', 'del'].map(t => { const e = document.createElement(t);"
        " document.body.append(e); const c = getComputedStyle(e, '::before').content;"
        " e.remove(); return c; })"
    )
    assert marks == ['"+"', f'"{MINUS}"']
    assert "seed prompt" in page.inner_text("figure.score-chart figcaption")
    assert not watched.errors, watched.errors


def test_five_hundred_candidates_draw_and_sort(
    synthetic_server: JobsServerProcess,
    chromium: Any,  # noqa: F811
) -> None:
    """500 candidates are drawn and sorted (how fast is bench/optimize_page.py's)."""
    job = synthetic_job(synthetic_server, synthetic_events(500))
    watched = open_job(chromium, synthetic_server, job)
    page = watched.page
    page.wait_for_function(
        "() => document.querySelectorAll('#candidates tbody tr').length === 501", timeout=60_000
    )
    header = "th[data-key='rollouts']"
    page.click(f"{header} button")
    page.wait_for_function(f"() => document.querySelector(\"{header}\").ariaSort === 'descending'")
    spent = page.locator("#candidates tbody tr td:nth-child(8)").all_inner_texts()
    counts = [int(value.replace(",", "")) for value in spent if value != DASH]
    assert len(spent) == 501 and len(counts) > 400, spent[:5]
    assert counts == sorted(counts, reverse=True)
    assert not watched.errors, watched.errors
