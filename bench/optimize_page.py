"""The optimization page with 500 candidates: how long chromium takes to draw it.

A jobs server (in this process, on loopback) holds a synthetic `prompt_learning`-shaped job: the
events an optimization of CANDIDATES candidates sends (a fifth accepted, eight validation
instances), posted before the page opens. Measured: from navigation to every candidate's row in
the table, from a click on a column header to the sorted table, and from posting one more
candidate to its row (a full redraw), each the median of ROUNDS.

Also `synthetic_events`, which the page's browser tests use for hostile candidate texts.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit

import httpx

CANDIDATES = 500
ROUNDS = 3
SEEDS = list(range(10, 18))
SEED_PROMPT = "You are a careful mathematician. Solve the problem, then submit the answer."
CHROMIUM = os.environ.get("SYNTH_CHROMIUM", "/usr/bin/chromium")


def synthetic_events(count: int, instruction: str = "Check each step.") -> list[dict[str, Any]]:
    """The events of an optimization that tried `count` candidates after the seed prompt: one
    in five accepted, scores rising; the last accepted is the best and adds `instruction`."""

    def sections(text: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": text},
            {"role": "user", "content": "Problem: {problem}"},
        ]

    def scores(level: float, n: int) -> list[float]:
        return [float((n + i) % 8 < level * 8) for i in range(len(SEEDS))]

    events: list[dict[str, Any]] = [
        {"type": "job.status", "data": {"state": "running"}},
        {
            "type": "prompt.learning.gepa.start",
            "data": {"budget": count * 6, "seed_prompt": {"sections": sections(SEED_PROMPT)}},
        },
    ]

    def validated(ident: str, parent: str | None, level: float, n: int, spent: int) -> None:
        instance = scores(level, n)
        average = sum(instance) / len(instance)
        events.append(
            {
                "type": "prompt.learning.validation.scored",
                "data": {
                    "candidate_id": ident,
                    "accuracy": average,
                    "instance_scores": instance,
                    "seeds": SEEDS,
                    "is_baseline": parent is None,
                    "parent_id": parent,
                    "rollouts_spent": spent,
                },
            }
        )

    validated("seed", None, 0.25, 0, 8)
    parent, best, spent = "seed", 0.25, 8
    for n in range(1, count + 1):
        ident = f"c{n:04d}"
        accepted = n % 5 == 0
        spent += 4 + (len(SEEDS) if accepted else 0)
        text = f"{SEED_PROMPT} Hint {n}." + (f" {instruction}" if n == count - count % 5 else "")
        events.append(
            {
                "type": "prompt.learning.proposal.scored",
                "data": {
                    "candidate_id": ident,
                    "parent_id": parent,
                    "iteration": n,
                    "minibatch_score_before": 1.0,
                    "minibatch_score": 3.0 if accepted else 1.0,
                    "accepted": accepted,
                    "sections": sections(text),
                    "components_changed": ["system"],
                    "rollouts_spent": spent,
                },
            }
        )
        if accepted:  # as the optimizer sends them: the proposal, its validation, new best
            best = min(1.0, best + 0.75 / (count / 5))
            validated(ident, parent, best, n, spent)
            events.append(
                {"type": "prompt.learning.gepa.new_best", "data": {"candidate_id": ident}}
            )
            parent = ident
    events.append(
        {
            "type": "prompt.learning.progress",
            "data": {"rollouts_completed": spent, "rollouts_total": count * 6},
        }
    )
    return events


def post_events(jobs_url: str, job_id: str, events: list[dict[str, Any]], key: str) -> None:
    for start in range(0, len(events), 500):
        answer = httpx.post(
            f"{jobs_url}/api/jobs/{job_id}/events",
            json={"events": events[start : start + 500]},
            headers={"X-API-Key": key},
            timeout=60,
        )
        answer.raise_for_status()


@contextmanager
def jobs_server(key: str) -> Iterator[tuple[str, Callable[[], str]]]:
    """A jobs server on loopback; answers its URL and a maker of (single-use) sign-in links."""
    from synth_ai.jobs import create_jobs_app
    from synth_ai.task import serve_in_background
    from synth_ai.ui import sign_in_url

    os.environ.setdefault("ENVIRONMENT_API_KEY", key)
    with TemporaryDirectory() as folder:
        app = create_jobs_app(Path(folder) / "jobs.db")
        with serve_in_background(app) as url:
            where = urlsplit(url)
            assert where.hostname is not None and where.port is not None
            host, port = where.hostname, where.port
            yield url, lambda: sign_in_url(app.state.signin, host, port)


def one_more(n: int) -> dict[str, Any]:
    """A rejected proposal, as the optimizer sends one mid-run."""
    return {
        "type": "prompt.learning.proposal.scored",
        "data": {
            "candidate_id": f"x{n:04d}",
            "parent_id": "seed",
            "minibatch_score_before": 1.0,
            "minibatch_score": 0.0,
            "accepted": False,
            "sections": [{"role": "system", "content": f"{SEED_PROMPT} Extra {n}."}],
            "components_changed": ["system"],
        },
    }


def measure(
    browser: Any, link: str, url: str, job_id: str, key: str, rows: int
) -> tuple[float, float, float]:
    """Seconds to every row; milliseconds from a click on a column to the sorted table; and
    milliseconds from posting one more candidate to its row on screen."""
    page = browser.new_context().new_page()
    page.goto(link)
    page.wait_for_selector("#content:not([hidden])")
    count = "n => document.querySelectorAll('#candidates tbody tr').length === n"
    started = time.monotonic()
    page.goto(f"{url}/ui/job.html?id={job_id}")
    page.wait_for_function(count, arg=rows, timeout=120_000)
    loaded = time.monotonic() - started
    page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")
    sort = page.evaluate(
        "() => new Promise(resolve => { const started = performance.now();"
        " document.querySelector(\"th[data-key='validation'] button\").click();"
        " requestAnimationFrame(() => requestAnimationFrame(() =>"
        " resolve(performance.now() - started))); })"
    )
    started = time.monotonic()
    post_events(url, job_id, [one_more(rows)], key)
    page.wait_for_function(count, arg=rows + 1, timeout=60_000)
    live = (time.monotonic() - started) * 1000
    page.context.close()
    return loaded, float(sort), live


def main() -> None:
    from playwright.sync_api import sync_playwright

    from bench.harness import record

    key = os.environ.get("ENVIRONMENT_API_KEY") or "bench-optimize-page-key"
    with jobs_server(key) as (url, link):
        job = httpx.post(
            f"{url}/api/jobs", json={"kind": "custom"}, headers={"X-API-Key": key}
        ).json()["job_id"]
        events = synthetic_events(CANDIDATES)
        post_events(url, job, events, key)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            try:
                rounds = [
                    measure(browser, link(), url, job, key, CANDIDATES + 1 + n)
                    for n in range(ROUNDS)
                ]
            finally:
                browser.close()
    loaded, sort, live = (statistics.median(r[i] for r in rounds) for i in range(3))
    rows = "\n".join(
        f"| {n + 1} | {r[0]:.2f} | {r[1]:.1f} | {r[2]:.0f} |" for n, r in enumerate(rounds)
    )
    record(
        "optimize page",
        f"""
A job's page in chromium (headless, `/usr/bin/chromium`) with {CANDIDATES} candidates
({CANDIDATES // 5} accepted, {len(SEEDS)} validation instances; {len(events)} events posted
before the page opens). Loaded: from navigation to the job's page (signed in already) to every
candidate's row in the table (the stream's replay of every event, and the drawing). Sort: a
click on a column header to the sorted table on screen (two animation frames; the rows are
reused, not made again). Live: from posting one more candidate to the jobs server to its row on
screen (the post, the stream, and a full redraw of the panels: table, tree, chart, Pareto grid,
diff).

| round | loaded s | sort ms | live ms |
|---|---|---|---|
{rows}

Medians: **{loaded:.2f} s** to load, **{sort:.0f} ms** from a click to the sorted table,
**{live:.0f} ms** from a new candidate's event to its row. A live page redraws at most once per
animation frame however fast events come.
""",
    )
    print(f"{CANDIDATES} candidates: loaded {loaded:.2f} s, sort {sort:.0f} ms, live {live:.0f} ms")


if __name__ == "__main__":
    main()
