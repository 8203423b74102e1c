"""A signed-in browser (session cookie, CSRF token on the write) uploads an artifact to a job
of its own, as a key does; without its CSRF token, or to another tenant's job, it cannot.
Real jobs servers on loopback, on SQLite and PostgreSQL; the sign-in is the UI's own API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.task import serve_in_background

from .conftest import KEY
from .test_jobs_artifacts import ACME, GLOBEX, TENANTS, as_, listed, new_job


class Browser:
    """A signed-in page: its cookie, and its CSRF token on writes."""

    def __init__(self, url: str, key: str) -> None:
        answer = httpx.post(f"{url}/ui/api/signin", json={"key": key})
        assert answer.status_code == 200, answer.text
        self.url = url
        self.cookie = answer.headers["set-cookie"].split(";", 1)[0]
        self.csrf = answer.json()["csrf"]

    def put(self, path: str, body: bytes, csrf: bool = True) -> httpx.Response:
        headers = {"Cookie": self.cookie, "Content-Type": "application/octet-stream"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return httpx.put(f"{self.url}{path}", content=body, headers=headers)


@pytest.mark.parametrize("who", ["operator", "tenant"])
def test_a_session_uploads_to_its_own_job_with_its_csrf_token(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", TENANTS)
    key = KEY if who == "operator" else ACME
    app = create_jobs_app(
        database_url,
        artifacts_dir=tmp_path / "artifacts",
        settings=StreamSettings(end_grace_s=0.05),
    )
    body = b"page upload\n" * 100
    with serve_in_background(app) as url:
        job_id = new_job(url, key)
        others = new_job(url, GLOBEX)
        browser = Browser(url, key)
        path = f"/api/jobs/{job_id}/artifacts/notes.txt"
        refused = browser.put(path, body, csrf=False)
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"]["error"]["code"] == "csrf_failed"
        stored = browser.put(path, body)
        assert stored.status_code == 201, stored.text
        assert stored.json()["sha256"] == hashlib.sha256(body).hexdigest()
        (item,) = listed(url, job_id, key)
        assert (item["name"], item["size"]) == ("notes.txt", len(body))
        download = httpx.get(f"{url}{item['url']}", headers=as_(key))
        assert download.content == body
        if who == "tenant":
            theirs = browser.put(f"/api/jobs/{others}/artifacts/notes.txt", body)
            assert theirs.status_code == 404, theirs.text
            assert listed(url, others, GLOBEX) == []
