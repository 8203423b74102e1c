"""Signing a browser in to the jobs server: single-use, short-lived login tokens; session
cookies that reach exactly the API a page needs; CSRF on every state-changing request made with
a session; every API-key rule unchanged; and all of it across replicas on one database."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.jobs.dashboard import summarise
from synth_ai.jobs.models import JobEvent
from synth_ai.task import serve_in_background

from .conftest import KEY

ACME, GLOBEX = "acme-key-8a7sd6f5", "globex-key-1q2w3e4r"


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def session_cookie(answer: httpx.Response) -> tuple[str, str]:
    """(Cookie header value, the raw Set-Cookie) of a sign-in answer."""
    raw = answer.headers["set-cookie"]
    return raw.split(";", 1)[0], raw


class Browser:
    """What a page sends: its session cookie and, on state-changing calls, the CSRF token."""

    def __init__(self, url: str, answer: httpx.Response, **headers: str) -> None:
        assert answer.status_code == 200, answer.text
        self.url = url
        self.cookie, self.set_cookie = session_cookie(answer)
        self.csrf = answer.json()["csrf"]
        self.headers = headers

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Cookie": self.cookie, **self.headers})

    def post(self, path: str, csrf: bool = True, **headers: str) -> httpx.Response:
        sent = {"Cookie": self.cookie, **self.headers, **headers}
        if csrf:
            sent["X-CSRF-Token"] = self.csrf
        return httpx.post(f"{self.url}{path}", headers=sent)


def test_a_login_link_works_once_at_any_replica_and_its_session_at_every(
    database_url: str,
) -> None:
    origin = {"Host": "jobs.example:8443"}  # both behind one proxy, as a browser sees them
    with ExitStack() as stack:
        apps = [create_jobs_app(database_url) for _ in range(2)]
        first, second = (stack.enter_context(serve_in_background(app)) for app in apps)
        token = apps[0].state.signin.login_token()
        signed = httpx.post(f"{second}/ui/api/signin", json={"login_token": token}, headers=origin)
        browser = Browser(second, signed, **origin)
        assert browser.cookie.startswith("synth_jobs_8443=")
        again = [
            httpx.post(f"{url}/ui/api/signin", json={"login_token": token}, headers=origin)
            for url in (first, second)
        ]
        assert [a.status_code for a in again] == [401, 401]
        assert "used already" in again[0].json()["detail"]["error"]["message"]
        browser.url = first  # the session another replica made
        assert browser.get("/api/jobs").status_code == 200
        assert browser.get("/ui/api/session").json()["operator"] is True
        assert KEY not in signed.text + browser.set_cookie


def test_a_login_link_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_UI_LOGIN_TTL_SECS", "1")
    app = create_jobs_app(tmp_path / "jobs.db")
    with serve_in_background(app) as url:
        token = app.state.signin.login_token()
        time.sleep(1.2)
        late = httpx.post(f"{url}/ui/api/signin", json={"login_token": token})
        assert late.status_code == 401 and "expired" in late.text
        forged = token[:-1] + ("0" if token[-1] != "0" else "1")
        assert httpx.post(f"{url}/ui/api/signin", json={"login_token": forged}).status_code == 401
        assert "set-cookie" not in late.headers
    monkeypatch.setenv("SYNTH_UI_LOGIN_TTL_SECS", "0")
    with pytest.raises(ValueError, match="SYNTH_UI_LOGIN_TTL_SECS"):
        create_jobs_app(tmp_path / "jobs.db")


def test_a_session_cookie_reaches_the_api_a_page_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_jobs_app(tmp_path / "jobs.db", settings=StreamSettings(end_grace_s=0.05))
    with serve_in_background(app) as url:
        browser = Browser(url, httpx.post(f"{url}/ui/api/signin", json={"key": KEY}))
        flags = [part.strip() for part in browser.set_cookie.split(";")]
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(flags)
        assert not any(flag.startswith("Secure") for flag in flags)  # plain http on loopback
        assert browser.cookie.startswith(f"synth_jobs_{url.rsplit(':', 1)[1]}=")
        job = httpx.post(f"{url}/api/jobs", json={}, headers=as_(KEY)).json()["job_id"]
        metric = {"type": "rl.train.metric", "data": {"name": "loss", "value": 1.5, "step": 3}}
        httpx.post(f"{url}/api/jobs/{job}/events", json=metric, headers=as_(KEY))
        for path in ("/api/jobs", f"/api/jobs/{job}", f"/api/jobs/{job}/events"):
            assert browser.get(path).status_code == 200, path
        assert browser.get(f"/api/jobs/{job}/artifacts").json() == {"artifacts": []}
        summary = browser.get("/ui/api/jobs").json()["jobs"][0]
        assert summary["metrics"] == {"loss": {"value": 1.5, "step": 3, "split": None}}
        token = browser.post(f"/api/jobs/{job}/stream-token").json()["token"]
        assert browser.post(f"/api/jobs/{job}/cancel").json()["state"] == "canceled"
        stream = httpx.get(f"{url}/api/jobs/{job}/stream", params={"token": token})
        assert stream.status_code == 200 and '"state":"canceled"' in stream.text
        # signing out ends the cookie in the browser
        out = browser.post("/ui/api/signout")
        assert out.status_code == 204 and "Max-Age=0" in out.headers["set-cookie"]
        assert httpx.get(f"{url}/ui/api/session").status_code == 401


def test_state_changes_with_a_session_need_its_csrf_token_and_this_origin(
    tmp_path: Path,
) -> None:
    with serve_in_background(create_jobs_app(tmp_path / "jobs.db")) as url:
        browser = Browser(url, httpx.post(f"{url}/ui/api/signin", json={"key": KEY}))
        job = httpx.post(f"{url}/api/jobs", json={}, headers=as_(KEY)).json()["job_id"]
        cancel = f"/api/jobs/{job}/cancel"
        refusals = [
            browser.post(cancel, csrf=False),  # a cross-site form post carries no header
            browser.post(cancel, csrf=False, **{"X-CSRF-Token": "0" * 64}),
            browser.post(cancel, Origin="http://evil.example"),
            browser.post(cancel, **{"Sec-Fetch-Site": "cross-site"}),
            browser.post(cancel, **{"Sec-Fetch-Site": "same-site"}),  # another port, same host
        ]
        for refused in refusals:
            assert refused.status_code == 403, refused.text
            assert refused.json()["detail"]["error"]["code"] == "csrf_failed"
        assert httpx.get(f"{url}/api/jobs/{job}", headers=as_(KEY)).json()["state"] == "queued"
        # another site cannot sign a browser in either (login CSRF)
        elsewhere = httpx.post(
            f"{url}/ui/api/signin", json={"key": KEY}, headers={"Origin": "http://evil.example"}
        )
        assert elsewhere.status_code == 403
        own = browser.post(cancel, Origin=url, **{"Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 200 and own.json()["state"] == "canceled"


def test_api_key_rules_are_unchanged_beside_a_session(tmp_path: Path) -> None:
    with serve_in_background(create_jobs_app(tmp_path / "jobs.db")) as url:
        browser = Browser(url, httpx.post(f"{url}/ui/api/signin", json={"key": KEY}))
        job = httpx.post(f"{url}/api/jobs", json={}, headers=as_(KEY)).json()["job_id"]
        # a wrong key is refused even beside a valid session: a presented key decides alone
        wrong = httpx.get(
            f"{url}/api/jobs", headers={"Cookie": browser.cookie, "X-API-Key": "wrong"}
        )
        assert wrong.status_code == 401 and "www-authenticate" in wrong.headers
        # a key needs no CSRF token (nothing ambient: a browser never sends it by itself)
        assert httpx.post(f"{url}/api/jobs/{job}/cancel", headers=as_(KEY)).status_code == 200
        # no key, no session: 401 as before; a forged or foreign cookie is no session
        assert httpx.get(f"{url}/api/jobs").status_code == 401
        name, _, value = browser.cookie.partition("=")
        forged = f"{name}={value[:-2]}00"
        assert httpx.get(f"{url}/api/jobs", headers={"Cookie": forged}).status_code == 401
        elsewhere = f"synth_jobs_1={value}"  # another server's cookie name
        assert httpx.get(f"{url}/api/jobs", headers={"Cookie": elsewhere}).status_code == 401
        odd_host = {"Cookie": browser.cookie, "Host": "jobs.example:port"}
        assert httpx.get(f"{url}/api/jobs", headers=odd_host).status_code == 401  # not a 500
        wrong_key = httpx.post(f"{url}/ui/api/signin", json={"key": "not-a-key"})
        assert wrong_key.status_code == 401 and "not-a-key" not in wrong_key.text


def test_a_tenants_session_sees_only_its_jobs_and_ends_with_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", f"acme:{ACME},globex:{GLOBEX}")
    with serve_in_background(create_jobs_app(tmp_path / "jobs.db")) as url:
        mine = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]
        theirs = httpx.post(f"{url}/api/jobs", json={}, headers=as_(GLOBEX)).json()["job_id"]
        acme = Browser(url, httpx.post(f"{url}/ui/api/signin", json={"key": ACME}))
        assert acme.get("/ui/api/session").json()["tenant"] == "acme"
        assert [j["job_id"] for j in acme.get("/ui/api/jobs").json()["jobs"]] == [mine]
        assert [j["job_id"] for j in acme.get("/api/jobs").json()["jobs"]] == [mine]
        for path in (f"/api/jobs/{theirs}", f"/api/jobs/{theirs}/artifacts"):
            assert acme.get(path).status_code == 404
        assert acme.post(f"/api/jobs/{theirs}/stream-token").status_code == 404
        assert acme.post(f"/api/jobs/{theirs}/cancel").status_code == 404
        monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", f"globex:{GLOBEX}")  # acme's key removed
        assert acme.get("/ui/api/jobs").status_code == 401


def test_the_list_summary_reads_progress_and_the_latest_metric_values() -> None:
    def event(seq: int, type_: str, **data: object) -> JobEvent:
        return JobEvent(seq=seq, job_id="j", type=type_, data=data)

    job = {"job_id": "j", "kind": "custom", "state": "running", "config": {}, "tenant": "a"}
    summary = summarise(
        job,
        [
            event(1, "job.status", state="running", step=1, total=10, phase="warmup"),
            event(2, "rl.train.metric", name="reward", value=0.1, step=1, split="train"),
            event(3, "rl.train.metric", name="loss", value=2.0, step=1),
            event(4, "rl.eval.metric", name="reward", value=0.3, step=2, split="eval"),
            event(5, "job.status", state="running", step=2, phase="train"),
        ],
    )
    assert (summary["step"], summary["total"], summary["phase"]) == (2, 10, "train")
    assert list(summary["metrics"]) == ["reward", "loss"]  # most recently reported first
    assert summary["metrics"]["reward"] == {"value": 0.3, "step": 2, "split": "eval"}
    assert "config" not in summary and "tenant" not in summary


def test_jobs_serve_prints_a_sign_in_link_never_the_key(tmp_path: Path) -> None:
    from .processes import start_server, stop_server

    process, url, output = start_server(["jobs", "serve", "--db", str(tmp_path / "jobs.db")])
    try:
        printed = "".join(output)
        link = next(line.strip() for line in output if "/ui/#login=" in line)
        assert link.startswith(f"{url}/ui/#login=") and KEY not in printed
        token = link.partition("#login=")[2]
        assert httpx.post(f"{url}/ui/api/signin", json={"login_token": token}).status_code == 200
        assert httpx.post(f"{url}/ui/api/signin", json={"login_token": token}).status_code == 401
        page = httpx.get(f"{url}/ui/")
        assert (
            page.status_code == 200
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        assert httpx.get(f"{url}/ui/vendor/uPlot.LICENSE").status_code == 200
    finally:
        stop_server(process, output)
