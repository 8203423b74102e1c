"""What the jobs server's answers give away: whether another tenant's job id exists (the lookup is
the same as for a missing one), a password in an eval job's URL (masked), and, through the
dashboard's policy, a way to run an artifact as the dashboard's script (none)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from synth_ai.eval import EvalJobKind
from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.task import create_task_app, serve_in_background

from .browser import chromium  # noqa: F401  (fixture)
from .conftest import KEY, echo_rollout, make_config, wait_for
from .processes import free_port

ACME, GLOBEX = "acme-key-8a7sd6f5", "globex-key-1q2w3e4r"
MISSING = "job_0000000000000000"


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


@contextmanager
def serve(
    db: str, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Starlette]]:
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", f"acme:{ACME}, globex:{GLOBEX}")
    app = create_jobs_app(
        db,
        artifacts_dir=folder / "artifacts",
        settings=StreamSettings(end_grace_s=0.05),
        kinds={"eval": EvalJobKind()},
    )
    with serve_in_background(app) as url:
        yield url, app


@pytest.fixture
def jobs(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Starlette]]:
    with serve(database_url, tmp_path, monkeypatch) as served:
        yield served


class Recorded:
    """A connection that notes every statement sent through it (job ids made alike)."""

    def __init__(self, connection: Any, calls: list[tuple[str, str]]) -> None:
        self.connection, self.calls = connection, calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.connection, name)
        if name not in ("query", "execute", "executemany"):
            return method

        def recorded(sql: str, params: Any = ()) -> Any:
            self.calls.append((sql, re.sub(r"job_[0-9a-f]{16}", "job_ID", repr(params))))
            return method(sql, params)

        return recorded


def test_another_tenants_job_is_looked_up_as_a_missing_one(
    jobs: tuple[str, Starlette], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every route of a job makes the same store calls for an id that does not exist and for
    another tenant's job, whether that job is in memory or not."""
    url, app = jobs
    service = app.state.jobs
    # no replica feed: on PostgreSQL it would read hot jobs ahead in the background, and only
    # each request's own calls are to be counted
    monkeypatch.setattr(service.log.database, "shared", False)
    theirs = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]
    calls: list[tuple[str, str]] = []
    database = service.log.database
    reading = database.reading

    @contextmanager
    def recording() -> Iterator[Recorded]:
        with reading() as connection:
            yield Recorded(connection, calls)

    monkeypatch.setattr(database, "reading", recording)
    monkeypatch.setattr(
        database, "connect", lambda: Recorded(type(database).connect(database), calls)
    )

    def store_calls(method: str, job_id: str, path: str) -> tuple[int, list[tuple[str, str]]]:
        calls.clear()
        answer = httpx.request(
            method, f"{url}/api/jobs/{job_id}{path}", json={"type": "x.log"}, headers=as_(GLOBEX)
        )
        # the lease sweep runs in the background and names no job: only the job's calls count
        return answer.status_code, [call for call in calls if "job_ID" in call[1]]

    routes = [
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/events"),
        ("POST", "/cancel"),
        ("POST", "/stream-token"),
        ("GET", "/artifacts"),
        ("PUT", "/artifacts/results.jsonl"),
    ]
    for method, path in routes:
        missing = store_calls(method, MISSING, path)
        assert missing[0] == 404 and missing[1], (method, path)  # the store was asked
        assert httpx.get(f"{url}/api/jobs/{theirs}", headers=as_(ACME)).status_code == 200
        assert service.live_bus(theirs) is not None
        # a bus just loaded reads the log ahead once, in the background: not this request's
        wait_for(lambda: not service.reading_ahead(theirs))
        assert store_calls(method, theirs, path) == missing, (method, path, "in memory")
        service.buses._buses.pop(theirs)
        assert store_calls(method, theirs, path) == missing, (method, path, "not in memory")
        assert service.live_bus(theirs) is None  # looking did not load it


def test_a_password_in_an_eval_jobs_urls_is_never_answered(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    dead = f"http://ops:s3cr3t-pw@127.0.0.1:{free_port()}"
    policy = {
        "inference_url": f"{dead}/v1",
        "policy_config": {"inference_url": f"{dead}/v1"},
        "seeds": [0],
        "max_retries": 0,
        "timeout_s": 5,
    }
    refused = httpx.post(  # the preflight fails before a job is made
        f"{url}/api/jobs",
        json={"kind": "eval", "config": {"task_app_url": f"{dead}/app", **policy}},
        headers=as_(ACME),
    )
    assert refused.status_code == 422, refused.text
    assert "s3cr3t" not in refused.text
    with serve_in_background(create_task_app(make_config(rollout=echo_rollout))) as app_url:
        live = app_url.replace("http://", "http://ops:s3cr3t-pw@")
        config = {"task_app_url": live, "api_key": KEY, **policy}
        created = httpx.post(
            f"{url}/api/jobs", json={"kind": "eval", "config": config}, headers=as_(ACME)
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]

        def ended() -> bool:
            job = httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)).json()
            return bool(job["state"] in ("succeeded", "failed"))

        wait_for(ended, timeout_s=20)
    answers = [
        created,
        httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)),
        httpx.get(f"{url}/api/jobs", headers=as_(ACME)),
        httpx.get(f"{url}/api/jobs", headers=as_(KEY)),
        httpx.get(f"{url}/api/jobs/{job_id}/events", headers=as_(ACME)),
        httpx.get(f"{url}/ui/api/jobs", headers=as_(ACME)),
        httpx.get(f"{url}/api/jobs/{job_id}/stream", headers=as_(ACME)),
    ]
    for answer in answers:
        assert answer.status_code == 200 or answer is created, answer.text
        assert "s3cr3t" not in answer.text, answer.request.url
    shown = httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)).json()["config"]
    masked = dead.replace("s3cr3t-pw", "***")
    assert shown["task_app_url"] == live.replace("s3cr3t-pw", "***")
    assert shown["inference_url"] == shown["policy_config"]["inference_url"] == f"{masked}/v1"


def test_the_dashboard_runs_only_its_own_scripts_never_an_artifact(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chromium: Any,  # noqa: F811
) -> None:
    with serve(str(tmp_path / "jobs.db"), tmp_path, monkeypatch) as (url, _):
        check_scripts(url, chromium)


def check_scripts(url: str, chromium: Any) -> None:  # noqa: F811
    job_id = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]
    put = httpx.put(
        f"{url}/api/jobs/{job_id}/artifacts/evil.js",
        content=b"window.pwned = 1;",
        headers=as_(ACME),
    )
    assert put.status_code == 201
    token = httpx.post(f"{url}/api/jobs/{job_id}/stream-token", headers=as_(ACME)).json()["token"]
    nonces = set()
    for path in ("/ui/", "/ui/job.html"):
        page = httpx.get(f"{url}{path}")
        policy = page.headers["content-security-policy"]
        (nonce,) = re.findall(r"script-src 'nonce-([A-Za-z0-9_-]{24})';", policy)
        scripts = re.findall(r"<script [^>]*>", page.text)
        assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
        assert "'self'" not in policy.partition("script-src")[2].partition(";")[0]
        nonces.add(nonce)
    assert len(nonces) == 2  # a fresh nonce per answer
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"{url}/ui/job.html#{job_id}")
        outcome = page.evaluate(
            """async (src) => {
                const violations = [];
                document.addEventListener(
                    "securitypolicyviolation", (e) => violations.push(e.blockedURI)
                );
                const load = (src, nonce) => new Promise((done) => {
                    const script = document.createElement("script");
                    if (nonce) script.nonce = nonce;
                    script.onload = () => done("ran");
                    script.onerror = () => done("refused");
                    script.src = src;
                    document.head.append(script);
                });
                const nonce = document.querySelector("script[nonce]").nonce;
                return {
                    artifact: await load(src),
                    vendorWithoutNonce: await load("/ui/vendor/uPlot.iife.min.js"),
                    vendorWithNonce: await load("/ui/vendor/uPlot.iife.min.js", nonce),
                    pwned: window.pwned ?? null,
                    violations,
                };
            }""",
            f"/api/jobs/{job_id}/artifacts/evil.js?token={token}",
        )
    finally:
        context.close()
    assert outcome["artifact"] == "refused" and outcome["pwned"] is None
    assert outcome["vendorWithoutNonce"] == "refused" and outcome["vendorWithNonce"] == "ran"
    assert any(f"/api/jobs/{job_id}/artifacts/evil.js" in uri for uri in outcome["violations"])
