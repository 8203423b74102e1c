"""The jobs dashboard in a real browser, against a real `synth-ai jobs serve` process: signing in
from the printed link, the live list and job page, resuming across a server restart, cancel
with its CSRF defences, tenants, and the key never reaching the page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.task import serve_in_background

from .browser import Watched, chromium, screenshots  # noqa: F401  (fixtures)
from .conftest import KEY
from .processes import free_port

ACME, GLOBEX = "acme-key-8a7sd6f5", "globex-key-1q2w3e4r"
SHOWS_S = 15.0
"""How long a test waits for what is posted while a page is open to show on it: it shows in
well under a second, over the page's live stream (each such test checks the stream still
says live); the bound only leaves room for a loaded machine."""


class JobsServerProcess:
    """`synth-ai jobs serve` on a fixed port and database, so it can be killed and started
    again where the page expects it."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self) -> None:
        env = {
            **os.environ,
            "ENVIRONMENT_API_KEY": KEY,
            "SYNTH_JOBS_TENANT_KEYS": f"acme:{ACME},globex:{GLOBEX}",
            # every point reaches the page (coalescing to 4 Hz is by design, tested elsewhere),
            # so the chart can be checked point by point
            "SSE_MAX_METRIC_HZ": "0",
            "SSE_END_GRACE_SECS": "0.2",
        }
        args = ["jobs", "serve", "--db", str(self.db), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synth_ai", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "Uvicorn running on" in line:
                # keep reading, or a full pipe would block the server's logging
                threading.Thread(
                    target=self.output.extend, args=(self.process.stdout,), daemon=True
                ).start()
                return
        raise AssertionError("jobs serve exited early:\n" + "".join(self.output))

    def sign_in_link(self) -> str:
        links = [line.strip() for line in self.output if "/ui/#login=" in line]
        return links[-1]

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def post(self, path: str, body: Any, key: str = KEY) -> Any:
        answer = httpx.post(f"{self.url}{path}", json=body, headers={"X-API-Key": key})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def metric(self, job: str, name: str, step: int, value: float, split: str = "train") -> None:
        data = {"name": name, "value": value, "step": step, "split": split}
        self.post(f"/api/jobs/{job}/events", {"type": f"rl.{split}.metric", "data": data})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsServerProcess]:
    served = JobsServerProcess(tmp_path_factory.mktemp("dashboard") / "jobs.db")
    served.start()
    try:
        yield served
    finally:
        if served.process is not None and served.process.poll() is None:
            served.process.terminate()
            served.process.wait(timeout=10)


def wait_caption(page: Any, metric: str, text: str, timeout_s: float) -> float:
    """Seconds until a chart's caption says `text` (its point counts and latest values)."""
    started = time.monotonic()
    page.wait_for_function(
        "([metric, text]) => document.querySelector("
        "`figure.chart[data-metric='${metric}'] figcaption`)?.textContent.includes(text)",
        arg=[metric, text],
        timeout=timeout_s * 1000,
    )
    return time.monotonic() - started


def no_key_in(watched: Watched, context: Any, *keys: str) -> None:
    """The key reaches neither the page, nor its URL, cookies or web storage."""
    places = [
        watched.page.content(),
        watched.page.url,
        watched.storage(),
        *(f"{c['name']}={c['value']}" for c in context.cookies()),
    ]
    for key in keys:
        assert not any(key in place for place in places)


def test_a_job_live_from_sign_in_to_cancel_across_a_restart(
    server: JobsServerProcess,
    chromium: Any,  # noqa: F811
    screenshots: Path,  # noqa: F811
) -> None:
    job = server.post("/api/jobs", {"metadata": {"run": "ppo-7"}})["job_id"]
    server.post(
        f"/api/jobs/{job}/events",
        {
            "events": [
                {"type": "job.status", "data": {"state": "running", "step": 0, "total": 20}},
                {"type": "rl.train.metric", "data": {"name": "reward", "value": 0.1, "step": 0}},
            ]
        },
    )
    context = chromium.new_context(accept_downloads=True)
    watched = Watched(context)
    page = watched.page
    link = server.sign_in_link()
    page.goto(link)
    row = page.locator(f"tr[data-job-id='{job}']")
    row.wait_for(timeout=15_000)
    assert "running" in row.inner_text() and "step 0 of 20" in row.inner_text()
    assert "#login" not in page.url  # the token leaves the address bar at once
    page.screenshot(path=screenshots / "dashboard-list.png", full_page=True)

    # open the job from the keyboard
    page.focus(f"a[href='job.html?id={job}']")
    page.keyboard.press("Enter")
    page.wait_for_selector("figure.chart[data-metric='reward'] canvas", timeout=15_000)
    page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")

    # a metric and a log line posted after opening show, the chart drawn
    server.metric(job, "loss", 1, 2.5)
    wait_caption(page, "loss", "train: 1 point, latest 2.5 at step 1", SHOWS_S)
    assert page.locator("figure.chart[data-metric='loss'] canvas").count() >= 1
    server.post(
        f"/api/jobs/{job}/events", {"type": "system.log", "level": "error", "message": "boom-1"}
    )
    line = page.locator("#log li", has_text="boom-1")
    line.wait_for(timeout=SHOWS_S * 1000)
    assert "ERROR" in line.inner_text()  # the level is a word, not only a colour

    # an artifact stored meanwhile is listed, and its link downloads it
    blob = b"checkpoint bytes"
    stored = httpx.put(
        f"{server.url}/api/jobs/{job}/artifacts/ckpt_1.pt",
        params={"kind": "checkpoint", "step": 1},
        content=blob,
        headers={"X-API-Key": KEY},
    )
    assert stored.status_code == 201
    artifact = page.locator("#artifacts a", has_text="ckpt_1.pt")
    artifact.wait_for(timeout=SHOWS_S * 1000)
    assert page.inner_text("#stream") == "live"
    with page.expect_download() as download:
        artifact.click()
    assert Path(download.value.path()).read_bytes() == blob

    # points 1..4, a restart of the server (kill -9, same port and database), points 5..9
    for step in range(1, 5):
        server.metric(job, "reward", step, step / 10)
    wait_caption(page, "reward", "train: 5 points", 15)
    server.kill()
    page.wait_for_function("() => document.getElementById('stream').textContent !== 'live'")
    server.start()
    for step in range(5, 10):
        server.metric(job, "reward", step, step / 10)
    server.metric(job, "reward", 3, 0.35, split="eval")
    wait_caption(page, "reward", "train: 10 points, latest 0.9 at step 9", 15)
    wait_caption(page, "reward", "eval: 1 point, latest 0.35 at step 3", 15)
    page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")
    assert page.locator("#log li", has_text="boom-1").count() == 1  # nothing shown twice
    last_seq = httpx.get(f"{server.url}/api/jobs/{job}", headers={"X-API-Key": KEY}).json()
    assert page.inner_text("#events") == str(last_seq["last_seq"])  # nothing missed
    page.screenshot(path=screenshots / "dashboard-job.png", full_page=True)

    # a cross-site page cannot cancel: another origin on this host (a "same-site" request,
    # which does carry the SameSite=Strict cookie) posts a form without the CSRF header
    async def form(request: Any) -> HTMLResponse:
        return HTMLResponse(
            f'<form method="post" action="{server.url}/api/jobs/{job}/cancel">'
            '<button id="go">win a prize</button></form>'
        )

    with serve_in_background(Starlette(routes=[Route("/", form)])) as elsewhere:
        attacker = context.new_page()
        attacker.goto(elsewhere)
        attacker.click("#go")
        attacker.wait_for_load_state()
        assert "csrf_failed" in attacker.content()
        attacker.close()
    snapshot = httpx.get(f"{server.url}/api/jobs/{job}", headers={"X-API-Key": KEY}).json()
    assert snapshot["state"] == "running"

    # the page's own cancel (two presses: arm, then confirm)
    page.click("#cancel")
    assert page.inner_text("#cancel") == "Press again to cancel the job"
    page.click("#cancel")
    page.wait_for_function(
        "() => document.getElementById('state').textContent.includes('canceled')"
    )
    page.wait_for_function(
        "() => document.getElementById('stream').textContent.startsWith('ended')"
    )
    snapshot = httpx.get(f"{server.url}/api/jobs/{job}", headers={"X-API-Key": KEY}).json()
    assert snapshot["state"] == "canceled"
    assert page.is_disabled("#cancel")
    page.screenshot(path=screenshots / "dashboard-canceled.png", full_page=True)

    no_key_in(watched, context, KEY)
    assert watched.errors == []
    # the printed link was spent: a second browser gets the sign-in form, told why
    other = Watched(chromium.new_context())
    other.page.goto(link)
    other.page.wait_for_selector("#signin")
    assert "used already" in other.page.inner_text("#signin")
    context.close()


def test_a_tenant_signed_in_with_its_key_sees_only_its_jobs(
    server: JobsServerProcess,
    chromium: Any,  # noqa: F811
    screenshots: Path,  # noqa: F811
) -> None:
    theirs = server.post("/api/jobs", {}, key=ACME)["job_id"]
    mine = server.post("/api/jobs", {}, key=GLOBEX)["job_id"]
    server.post(
        f"/api/jobs/{mine}/events",
        {"type": "eval.metric", "data": {"name": "accuracy", "value": 0.75, "total": 50}},
        key=GLOBEX,
    )
    context = chromium.new_context()
    watched = Watched(context)
    page = watched.page
    page.goto(f"{server.url}/ui/")
    page.fill("#signin-key", GLOBEX)
    page.press("#signin-key", "Enter")
    page.wait_for_selector(f"tr[data-job-id='{mine}']", timeout=15_000)
    assert "tenant globex" in page.inner_text("#session")
    assert "accuracy 0.75" in page.inner_text(f"tr[data-job-id='{mine}']")
    ids = page.eval_on_selector_all("tr[data-job-id]", "rows => rows.map(r => r.dataset.jobId)")
    assert ids == [mine]  # not acme's, not the operator's
    page.screenshot(path=screenshots / "dashboard-tenant.png", full_page=True)
    page.goto(f"{server.url}/ui/job.html?id={theirs}")
    page.wait_for_function(
        "() => document.getElementById('problem').textContent.includes('No job')"
    )
    no_key_in(watched, context, GLOBEX, KEY)
    assert watched.errors == []
    context.close()


def test_an_expired_sign_in_link_asks_for_a_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chromium: Any,  # noqa: F811
) -> None:
    monkeypatch.setenv("SYNTH_UI_LOGIN_TTL_SECS", "1")
    app = create_jobs_app(tmp_path / "jobs.db")
    with serve_in_background(app) as url:
        link = f"{url}/ui/#login={app.state.signin.login_token()}"
        time.sleep(1.2)
        watched = Watched(chromium.new_context())
        watched.page.goto(link)
        watched.page.wait_for_selector("#signin")
        assert "expired" in watched.page.inner_text("#signin")
        assert watched.page.locator("#content").is_hidden()
        assert watched.errors == []


def test_a_stream_cut_loose_resumes_with_a_fresh_token_once_its_own_expired(
    tmp_path: Path,
    chromium: Any,  # noqa: F811
) -> None:
    """A burst overflows the page's stream (it is told `lagged` and cut loose); the browser
    reconnects with a token that has expired meanwhile (401), so the page asks for a new one
    and resumes from the last seq it saw: every point arrives, none twice."""
    settings = StreamSettings(
        token_ttl_s=1.0, subscriber_buffer=4, max_metric_hz=0, end_grace_s=0.1
    )
    app = create_jobs_app(tmp_path / "jobs.db", settings=settings)
    with serve_in_background(app) as url:
        key = {"X-API-Key": KEY}
        job = httpx.post(f"{url}/api/jobs", json={}, headers=key).json()["job_id"]
        watched = Watched(chromium.new_context())
        page = watched.page
        tokens: list[str] = []
        page.on("request", lambda r: tokens.append(r.url) if "stream-token" in r.url else None)
        page.goto(f"{url}/ui/job.html?id={job}#login={app.state.signin.login_token()}")
        page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")
        time.sleep(1.2)  # the page's token expires
        burst = [
            {"type": "rl.train.metric", "data": {"name": "reward", "value": i / 100, "step": i}}
            for i in range(40)
        ]
        httpx.post(f"{url}/api/jobs/{job}/events", json={"events": burst}, headers=key)
        wait_caption(page, "reward", "train: 40 points, latest 0.39 at step 39", 15)
        page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")
        assert len(tokens) >= 2  # the first token, and a fresh one after the 401
        last_seq = httpx.get(f"{url}/api/jobs/{job}", headers=key).json()["last_seq"]
        assert page.inner_text("#events") == str(last_seq)
        assert watched.errors == []


def test_a_metric_held_back_to_coalesce_it_still_arrives(
    tmp_path: Path,
    chromium: Any,  # noqa: F811
) -> None:
    """At the default 4 Hz a second value of a metric is held back for a moment, so it reaches
    the page after a log line with a higher seq; the page shows both, each once."""
    app = create_jobs_app(tmp_path / "jobs.db", settings=StreamSettings(max_metric_hz=4))
    with serve_in_background(app) as url:
        key = {"X-API-Key": KEY}
        job = httpx.post(f"{url}/api/jobs", json={}, headers=key).json()["job_id"]
        watched = Watched(chromium.new_context())
        page = watched.page
        page.goto(f"{url}/ui/job.html?id={job}#login={app.state.signin.login_token()}")
        page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")
        events = [
            {"type": "rl.train.metric", "data": {"name": "loss", "value": 2.0, "step": 1}},
            {"type": "rl.train.metric", "data": {"name": "loss", "value": 1.5, "step": 2}},
            {"type": "system.log", "message": "after-the-metrics"},
        ]
        httpx.post(f"{url}/api/jobs/{job}/events", json={"events": events}, headers=key)
        wait_caption(page, "loss", "train: 2 points, latest 1.5 at step 2", 15)
        assert page.locator("#log li", has_text="after-the-metrics").count() == 1
        assert page.inner_text("#events") == "3"
        assert watched.errors == []


def sign_in_with_the_key(page: Any, server: JobsServerProcess) -> None:
    """The operator signs in by typing the key (the printed link works once)."""
    page.goto(f"{server.url}/ui/")
    page.fill("#signin-key", KEY)
    page.press("#signin-key", "Enter")


def test_an_eval_jobs_progress_reaches_its_total_and_times_are_iso_utc(
    server: JobsServerProcess,
    chromium: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A real eval on the jobs server (`eval --jobs-server`): the page's progress bar ends at
    the total, and its times read as the CLI prints them (ISO 8601, UTC)."""
    import re

    from synth_ai.task import create_task_app

    from .conftest import make_config

    out = str(tmp_path / "results.jsonl")
    command = [sys.executable, "-m", "synth_ai", "eval", "--seeds", "0-5", "--out", out]
    with serve_in_background(create_task_app(make_config())) as app_url:
        ran = subprocess.run(  # a process of its own: the browser's driver holds this loop
            [*command, app_url, "--jobs-server", server.url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    job = re.search(r"job (job_[0-9a-f]+)", ran.stdout)
    assert job is not None
    watched = Watched(chromium.new_context())
    page = watched.page
    sign_in_with_the_key(page, server)
    page.locator(f"tr[data-job-id='{job[1]}']").wait_for(timeout=15_000)
    page.goto(f"{server.url}/ui/job.html?id={job[1]}")
    page.wait_for_function(
        "() => document.getElementById('progress').textContent.startsWith('step 6 of 6')",
        timeout=15_000,
    )
    bar = page.locator("#progress progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("6", "6")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page.inner_text("#created"))
    first = page.locator("#log li time").first.inner_text()
    assert re.fullmatch(r"\d\d:\d\d:\d\dZ", first), first
    assert watched.errors == []


def test_a_file_emitted_as_an_artifact_appears_live_and_downloads(
    server: JobsServerProcess,
    chromium: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A producer's `emit_artifact` with a local file (what the example loops do): the file is
    uploaded, and the open job page shows it live as a link that downloads it."""
    from synth_ai.jobs import RemoteEmitter

    checkpoint = tmp_path / "step-7.json"
    checkpoint.write_text('{"step": 7}')
    job = server.post("/api/jobs", {})["job_id"]
    watched = Watched(chromium.new_context(accept_downloads=True))
    page = watched.page
    sign_in_with_the_key(page, server)
    page.locator(f"tr[data-job-id='{job}']").wait_for(timeout=15_000)
    page.goto(f"{server.url}/ui/job.html?id={job}")
    page.wait_for_function("() => document.getElementById('stream').textContent === 'live'")
    with RemoteEmitter(server.url, job, KEY) as emitter:
        emitter.emit_artifact("checkpoint", checkpoint.as_uri(), step=7)
    artifact = page.locator("#artifacts a", has_text="step-7.json")
    artifact.wait_for(timeout=SHOWS_S * 1000)
    assert page.inner_text("#stream") == "live"
    with page.expect_download() as download:
        artifact.click()
    assert Path(download.value.path()).read_text() == '{"step": 7}'
    assert watched.errors == []
