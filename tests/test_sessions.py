"""Ending sessions: sign-out ends a browser session at every replica; removing or rotating a key
ends the sessions, sign-in links and stream tokens it opened, at once; the trace viewer's
sessions (in memory) end the same way. Real servers on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.jobs.tenants import identify
from synth_ai.task import serve_in_background
from synth_ai.task.errors import TaskAppError
from synth_ai.tracing_v3 import TraceStore
from synth_ai.ui import create_traces_app
from synth_ai.ui.sessions import MemorySessions, StoredSession
from synth_ai.ui.signin import key_headers

from .conftest import KEY

ACME, ACME_NEW, GLOBEX = "acme-key-8a7sd6f5", "acme-key-new-5t6y7u8i", "globex-key-1q2w3e4r"
NEW_KEY = "rotated-operator-key-9o8i7u6y"


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


PROXIED = {"Host": "jobs.example:8443"}
"""Replicas behind one proxy, as a browser sees them (the cookie's name carries the port)."""


class Browser:
    """A signed-in page: its cookie, and its CSRF token on state changes."""

    def __init__(self, url: str, key: str | None = None, login_token: str | None = None):
        body = {"key": key} if key is not None else {"login_token": login_token}
        answer = httpx.post(f"{url}/ui/api/signin", json=body, headers=PROXIED)
        assert answer.status_code == 200, answer.text
        self.url = url
        self.cookie = answer.headers["set-cookie"].split(";", 1)[0]
        self.csrf = answer.json()["csrf"]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Cookie": self.cookie, **PROXIED})

    def post(self, path: str) -> httpx.Response:
        headers = {"Cookie": self.cookie, "X-CSRF-Token": self.csrf, **PROXIED}
        return httpx.post(f"{self.url}{path}", headers=headers)


def stream(url: str, job_id: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/api/jobs/{job_id}/stream", params={"token": token}, timeout=10)


def finished_job(url: str, key: str) -> str:
    """A job that has ended, so its stream answers at once and closes."""
    job_id = httpx.post(f"{url}/api/jobs", json={}, headers=as_(key)).json()["job_id"]
    done = {"type": "job.status", "data": {"state": "succeeded"}}
    assert httpx.post(f"{url}/api/jobs/{job_id}/events", json=done, headers=as_(key)).is_success
    return job_id


@pytest.fixture
def replicas(database_url: str) -> Iterator[tuple[str, str]]:
    """Two jobs servers on one database (on PostgreSQL, two replicas; on SQLite, two apps
    in one process on one file)."""
    settings = StreamSettings(end_grace_s=0.05)
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(
                serve_in_background(create_jobs_app(database_url, settings=settings))
            )
            for _ in range(2)
        )
        yield first, second


def test_signing_out_at_one_replica_ends_the_session_at_every_replica(
    replicas: tuple[str, str],
) -> None:
    a, b = replicas
    job_id = finished_job(a, KEY)
    browser = Browser(a, KEY)
    token = browser.post(f"/api/jobs/{job_id}/stream-token").json()["token"]
    browser.url = b  # the same session, at the other replica
    assert browser.get("/api/jobs").status_code == 200
    assert stream(b, job_id, token).status_code == 200
    assert browser.post("/ui/api/signout").status_code == 204
    for url in (a, b):
        browser.url = url
        assert browser.get("/api/jobs").status_code == 401
        assert browser.get("/ui/api/session").status_code == 401
        assert browser.post(f"/api/jobs/{job_id}/cancel").status_code == 401
        refused = stream(url, job_id, token)  # the stream token died with its session
        assert refused.status_code == 401, refused.text
        assert "session or key ended" in refused.json()["detail"]["error"]["message"]
    # a new sign-in is a new session; the key's own tokens never depended on the old one
    assert Browser(a, KEY).get("/api/jobs").status_code == 200
    by_key = httpx.post(f"{a}/api/jobs/{job_id}/stream-token", headers=as_(KEY)).json()["token"]
    assert stream(b, job_id, by_key).status_code == 200


CHANGES = {
    # name: (who signs in, the environment after the change, whether the session survives)
    "operator key rotated": (KEY, {"ENVIRONMENT_API_KEY": NEW_KEY}, False),
    "operator key removed": (KEY, {"ENVIRONMENT_API_KEY": ""}, False),
    "operator key kept as an alias": (
        KEY,
        {"ENVIRONMENT_API_KEY": NEW_KEY, "ENVIRONMENT_API_KEY_ALIASES": KEY},
        True,
    ),
    "operator alias dropped": (
        "alias-key-3e4r5t6y",
        {"ENVIRONMENT_API_KEY_ALIASES": "another-alias-0p9o8i7u"},
        False,
    ),
    "tenant key rotated": (ACME, {"SYNTH_JOBS_TENANT_KEYS": f"acme:{ACME_NEW}"}, False),
    "tenant key removed": (ACME, {"SYNTH_JOBS_TENANT_KEYS": f"globex:{GLOBEX}"}, False),
    "another tenant's key rotated": (
        ACME,
        {"SYNTH_JOBS_TENANT_KEYS": f"acme:{ACME},globex:{ACME_NEW}"},
        True,
    ),
}


@pytest.mark.parametrize("attempt", range(15))
def test_a_stream_token_won_in_a_race_with_sign_out_dies_with_the_session(
    attempt: int, tmp_path: Path
) -> None:
    """Whichever of the two lands first, once sign-out has answered no token the session got
    opens a stream: the token is checked against the session when used, not only when issued."""
    with serve_in_background(create_jobs_app(tmp_path / "jobs.db")) as url:
        job_id = finished_job(url, KEY)
        browser = Browser(url, KEY)
        headers = {"Cookie": browser.cookie, "X-CSRF-Token": browser.csrf, **PROXIED}

        async def race() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                return list(
                    await asyncio.gather(
                        *(client.post(f"/api/jobs/{job_id}/stream-token") for _ in range(3)),
                        client.post("/ui/api/signout"),
                    )
                )

        *issued, signed_out = asyncio.run(race())
        assert signed_out.status_code == 204
        tokens = [answer.json()["token"] for answer in issued if answer.status_code == 200]
        assert all(answer.status_code in (200, 401) for answer in issued)
        for token in tokens:
            assert stream(url, job_id, token).status_code == 401


@pytest.mark.parametrize("change", list(CHANGES))
def test_changing_a_key_ends_its_sessions_and_stream_tokens_at_once(
    change: str, replicas: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    who, after, survives = CHANGES[change]
    monkeypatch.setenv("ENVIRONMENT_API_KEY_ALIASES", "alias-key-3e4r5t6y")
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", f"acme:{ACME},globex:{GLOBEX}")
    a, b = replicas
    job_id = finished_job(a, who)
    browser = Browser(a, who)
    by_session = browser.post(f"/api/jobs/{job_id}/stream-token").json()["token"]
    by_key = httpx.post(f"{a}/api/jobs/{job_id}/stream-token", headers=as_(who)).json()["token"]
    assert stream(b, job_id, by_session).status_code == 200
    assert stream(b, job_id, by_key).status_code == 200
    for name, value in after.items():
        monkeypatch.setenv(name, value)
    expected = 200 if survives else 401
    for url in (a, b):
        browser.url = url
        assert browser.get("/api/jobs").status_code == expected, url
        assert browser.get(f"/api/jobs/{job_id}").status_code == expected
        assert stream(url, job_id, by_session).status_code == expected
        assert stream(url, job_id, by_key).status_code == expected


def test_a_sign_in_link_dies_with_the_key_it_was_printed_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_jobs_app(tmp_path / "jobs.db")
    with serve_in_background(app) as url:
        token = app.state.signin.login_token()
        monkeypatch.setenv("ENVIRONMENT_API_KEY", NEW_KEY)
        late = httpx.post(f"{url}/ui/api/signin", json={"login_token": token})
        assert late.status_code == 401 and "set-cookie" not in late.headers
        assert "key behind this sign-in" in late.json()["detail"]["error"]["message"]
        fresh = app.state.signin.login_token()
        assert Browser(url, login_token=fresh).get("/api/jobs").status_code == 200


def test_a_session_depends_on_one_whole_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key typed with others after a comma names no single key: no session rests on it."""
    monkeypatch.setenv("ENVIRONMENT_API_KEY_ALIASES", "alias-key-3e4r5t6y")
    with serve_in_background(create_jobs_app(tmp_path / "jobs.db")) as url:
        for typed in (f"{KEY},guess-1", f"guess-1,{KEY}", f"{KEY},alias-key-3e4r5t6y"):
            refused = httpx.post(f"{url}/ui/api/signin", json={"key": typed})
            assert refused.status_code == 401 and "set-cookie" not in refused.headers
        assert Browser(url, f"  {KEY} ").get("/api/jobs").status_code == 200  # spaces trimmed


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "traces.db"
    TraceStore(db).close()
    with serve_in_background(create_traces_app(db)) as url:
        yield url


def test_the_trace_viewer_ends_sessions_on_sign_out_and_with_their_key(
    viewer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_out, rotated = Browser(viewer, KEY), Browser(viewer, KEY)
    assert signed_out.get("/ui/api/session").status_code == 200
    assert signed_out.post("/ui/api/signout").status_code == 204
    assert signed_out.get("/ui/api/session").status_code == 401
    assert rotated.get("/ui/api/session").status_code == 200
    monkeypatch.setenv("ENVIRONMENT_API_KEY", NEW_KEY)
    assert rotated.get("/ui/api/session").status_code == 401
    assert Browser(viewer, NEW_KEY).get("/ui/api/session").status_code == 200


@pytest.mark.parametrize("server", ["jobs", "traces"])
def test_signing_in_with_a_key_no_header_can_carry_is_a_4xx(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if server == "jobs":
        app = create_jobs_app(tmp_path / "jobs.db")
    else:
        TraceStore(tmp_path / "traces.db").close()
        app = create_traces_app(tmp_path / "traces.db")
    with serve_in_background(app) as url:
        for key in ("ключ", "key-€", "🔑"):
            answer = httpx.post(f"{url}/ui/api/signin", json={"key": key})
            assert answer.status_code == 422, answer.text
            error = answer.json()["detail"]["error"]
            assert error["code"] == "invalid_request" and "latin-1" in error["message"]
            assert key not in answer.text
        link = httpx.post(f"{url}/ui/api/signin", json={"login_token": "ключ.подпись"})
        assert link.status_code == 401, link.text
        cookie = "synth_jobs_default=ключ.ключ; synth_traces_default=ключ".encode()
        raw = httpx.get(f"{url}/ui/api/session", headers={"Cookie": cookie, "Host": "h"})
        assert raw.status_code == 401


@given(st.text(min_size=1, max_size=64))
def test_any_typed_key_is_refused_cleanly_or_names_its_principal(typed: str) -> None:
    """What the sign-in form does with a typed key: a clear 422, or headers `identify` reads
    (never an exception of the server's)."""
    try:
        headers = key_headers(typed)
    except TaskAppError as exc:
        assert exc.status == 422
        with pytest.raises(UnicodeEncodeError):
            typed.encode("latin-1")
        return
    assert isinstance(headers, Headers)
    principal = identify(headers)
    assert principal is None or KEY in typed


def test_a_single_process_keeps_a_bounded_number_of_sessions() -> None:
    sessions = MemorySessions(limit=3)
    now = time.time()
    sessions.open(StoredSession("expired", None, "k", now - 1))
    for sid in ("a", "b", "c"):
        sessions.open(StoredSession(sid, None, "k", now + 60))
    assert len(sessions) == 3 and sessions.find("expired") is None and sessions.find("a")
    sessions.open(StoredSession("d", None, "k", now + 60))  # full: the oldest live one ends
    assert len(sessions) == 3 and sessions.find("a") is None
    assert all(sessions.find(sid) for sid in ("b", "c", "d"))
    sessions.end("b")
    assert sessions.find("b") is None and len(sessions) == 2
