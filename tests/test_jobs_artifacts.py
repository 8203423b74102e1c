"""Artifacts under attack, on SQLite and PostgreSQL: only the owner (or the operator) writes, the
bounds hold (also against concurrent uploads), listing reads the stored hash and no file, and a
download can never act as a page or a script of the server's origin."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.jobs.log import JobEventLog
from synth_ai.task import serve_in_background

from .conftest import KEY

ACME, GLOBEX = "acme-key-8a7sd6f5", "globex-key-1q2w3e4r"
TENANTS = f"acme:{ACME}, globex:{GLOBEX}"
MISSING = "job_0000000000000000"


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


@contextmanager
def serve(
    url: str, folder: Path, monkeypatch: pytest.MonkeyPatch, **limits: Any
) -> Iterator[tuple[str, Starlette]]:
    """A jobs server on `url`, its artifacts under `folder`."""
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", TENANTS)
    settings = StreamSettings(end_grace_s=0.05, **limits)
    app = create_jobs_app(url, artifacts_dir=folder / "artifacts", settings=settings)
    with serve_in_background(app) as base:
        yield base, app


@pytest.fixture
def jobs(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Starlette]]:
    with serve(database_url, tmp_path, monkeypatch) as served:
        yield served


def new_job(url: str, key: str = ACME) -> str:
    created = httpx.post(f"{url}/api/jobs", json={}, headers=as_(key))
    assert created.status_code == 201, created.text
    return str(created.json()["job_id"])


def put(url: str, job_id: str, name: str, body: bytes, key: str, prefix: str = "/api") -> Any:
    return httpx.put(
        f"{url}{prefix}/jobs/{job_id}/artifacts/{name}", content=body, headers=as_(key)
    )


def error_of(answer: httpx.Response) -> dict[str, Any]:
    return dict(answer.json()["detail"]["error"])


def listed(url: str, job_id: str, key: str = ACME) -> list[dict[str, Any]]:
    return list(
        httpx.get(f"{url}/api/jobs/{job_id}/artifacts", headers=as_(key)).json()["artifacts"]
    )


def test_only_the_owner_or_the_operator_writes_a_jobs_artifacts(
    jobs: tuple[str, Starlette],
) -> None:
    url, app = jobs
    job_id = new_job(url)
    mine = b'{"score": 1}\n'
    assert put(url, job_id, "results.jsonl", mine, ACME).status_code == 201
    missing = put(url, MISSING, "results.jsonl", b"forged", GLOBEX)
    assert missing.status_code == 404
    path = app.state.jobs.artifacts.path(job_id, "results.jsonl")
    before = httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)).json()["last_seq"]
    done = {"type": "job.status", "data": {"state": "succeeded"}}
    for finished in (False, True):
        if finished:
            httpx.post(f"{url}/api/jobs/{job_id}/events", json=done, headers=as_(ACME))
            before += 1
        for prefix in ("/api", "/rl"):
            forged = put(url, job_id, "results.jsonl", b"forged", GLOBEX, prefix)
            # exactly what a missing job answers: the id tells the other tenant nothing
            assert forged.status_code == 404
            assert forged.text.replace(job_id, MISSING) == missing.text
            assert put(url, job_id, "results.jsonl", b"x", "nobody's key").status_code == 401
        assert path.read_bytes() == mine
        snapshot = httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)).json()
        assert snapshot["last_seq"] == before  # no artifact event was appended either
        assert [a["sha256"] for a in listed(url, job_id)] == [hashlib.sha256(mine).hexdigest()]
    # the owner may still add files to its finished job, and the operator to any job
    assert put(url, job_id, "report.txt", b"late", ACME).status_code == 201
    assert put(url, job_id, "audit.txt", b"op", KEY, prefix="/rl").status_code == 201
    assert [a["name"] for a in listed(url, job_id)] == ["audit.txt", "report.txt", "results.jsonl"]


def test_listing_answers_the_stored_hash_and_reads_no_file(
    jobs: tuple[str, Starlette], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, app = jobs
    job_id = new_job(url)
    blob = bytes(range(256)) * 4096  # 1 MiB
    stored = put(url, job_id, "ckpt.pt", blob, ACME).json()
    assert stored["sha256"] == hashlib.sha256(blob).hexdigest() and stored["size"] == len(blob)
    root = app.state.jobs.artifacts.root
    # behind the server's back: the listing keeps what was uploaded
    app.state.jobs.artifacts.path(job_id, "ckpt.pt").write_bytes(b"changed on disk")
    opened: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def counting(opener: Any) -> Any:
        def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
            if str(file).startswith(str(root)):
                opened.append(str(file))
            return opener(file, *args, **kwargs)

        return open_

    monkeypatch.setattr(builtins, "open", counting(real_open))
    monkeypatch.setattr(io, "open", counting(real_io_open))
    for _ in range(5):
        assert listed(url, job_id) == [stored]
    assert opened == []


def test_downloads_are_attachments_never_sniffed_rendered_or_run(
    jobs: tuple[str, Starlette],
) -> None:
    url, _ = jobs
    job_id = new_job(url)
    script = b"window.pwned = true;"
    assert put(url, job_id, "evil.js", script, ACME).status_code == 201
    token = httpx.post(f"{url}/api/jobs/{job_id}/stream-token", headers=as_(ACME)).json()["token"]
    for path in (f"/api/jobs/{job_id}/artifacts/evil.js", f"/rl/jobs/{job_id}/artifacts/evil.js"):
        got = httpx.get(f"{url}{path}", params={"token": token})
        assert got.status_code == 200 and got.content == script
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert got.headers["content-disposition"] == 'attachment; filename="evil.js"'
        assert got.headers["content-type"] == "application/octet-stream"


def test_each_bound_refuses_past_it_and_keeps_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    limits = {
        "max_artifacts": 3,
        "max_job_artifact_bytes": 1000,
        "max_owner_artifact_bytes": 1500,
        "max_artifact_bytes": 950,
    }
    with serve(database_url, tmp_path, monkeypatch, **limits) as (url, app):
        first, second, third = new_job(url), new_job(url), new_job(url)

        def refused(job_id: str, name: str, size: int, status: int, code: str, var: str) -> None:
            seq = httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)).json()["last_seq"]
            names = listed(url, job_id)
            answer = put(url, job_id, name, b"z" * size, ACME)
            assert answer.status_code == status, answer.text
            assert error_of(answer)["code"] == code and var in error_of(answer)["message"]
            assert listed(url, job_id) == names  # nothing kept: no row, no file, no event
            folder = app.state.jobs.artifacts.root / job_id
            assert sorted(p.name for p in folder.iterdir()) == sorted(a["name"] for a in names)
            after = httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)).json()
            assert after["last_seq"] == seq

        for name in ("a", "b", "c"):
            assert put(url, first, name, b"a" * 100, ACME).status_code == 201
        refused(first, "d", 1, 409, "too_many_artifacts", "SYNTH_JOBS_MAX_ARTIFACTS=3")
        assert put(url, first, "a", b"A" * 150, ACME).status_code == 201  # replacing is fine
        assert put(url, second, "big", b"b" * 900, ACME).status_code == 201  # acme: 1250 bytes
        refused(second, "more", 101, 413, "job_artifacts_full", "SYNTH_JOBS_MAX_JOB_ARTIFACT_BYTES")
        refused(
            third, "x", 251, 413, "tenant_artifacts_full", "SYNTH_JOBS_MAX_TENANT_ARTIFACT_BYTES"
        )
        assert put(url, third, "x", b"x" * 250, ACME).status_code == 201  # exactly what is left
        # one file past the per-file limit is refused at the edge, as before
        too_big = put(url, new_job(url, GLOBEX), "huge", b"h" * 951, GLOBEX)
        assert too_big.status_code == 413
        # another tenant's room is its own
        assert put(url, new_job(url, GLOBEX), "g", b"g" * 900, GLOBEX).status_code == 201


@pytest.mark.parametrize("round_", range(10))
def test_concurrent_uploads_cannot_pass_the_count_together(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, round_: int
) -> None:
    """Eight uploads all pass the early check (none is committed yet: the delay point holds
    each until all have streamed in); the commit's check under the owner's lock keeps three."""
    with serve(database_url, tmp_path, monkeypatch, max_artifacts=3) as (url, app):
        store = app.state.jobs.artifacts
        job_id = new_job(url)
        store.before_commit = asyncio.Barrier(8).wait

        async def race() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, headers=as_(ACME), timeout=30) as client:
                return await asyncio.gather(
                    *(
                        client.put(f"/api/jobs/{job_id}/artifacts/f{n}", content=b"x" * (n + 1))
                        for n in range(8)
                    )
                )

        answers = asyncio.run(race())
        assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 5
        kept = {a.json()["name"] for a in answers if a.status_code == 201}
        assert {a["name"] for a in listed(url, job_id)} == kept
        assert {p.name for p in (store.root / job_id).iterdir()} == kept  # no part left over


def test_files_of_an_older_version_are_indexed_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database made before sizes and hashes were kept: its files are hashed once, when the
    index is made, each owned by its job's tenant (and counted); later starts read none."""
    job_id = "job_00000000000000aa"
    log = JobEventLog(database_url)
    log.create_job(job_id, "custom", {}, {}, tenant="acme")
    log.close()
    folder = tmp_path / "artifacts" / job_id
    folder.mkdir(parents=True)
    old = b"o" * 700
    (folder / "old.bin").write_bytes(old)
    (folder / ".old.bin.1234.part").write_bytes(b"half")  # an upload cut off: not an artifact
    expected = {
        "name": "old.bin",
        "size": len(old),
        "sha256": hashlib.sha256(old).hexdigest(),
        "url": f"/api/jobs/{job_id}/artifacts/old.bin",
    }
    with serve(database_url, tmp_path, monkeypatch, max_owner_artifact_bytes=1000) as (url, _):
        assert listed(url, job_id) == [expected]
        refused = put(url, new_job(url), "new.bin", b"n" * 301, ACME)
        assert error_of(refused)["code"] == "tenant_artifacts_full"
    (folder / "old.bin").write_bytes(b"changed")
    with serve(database_url, tmp_path, monkeypatch) as (url, _):
        assert listed(url, job_id) == [expected]


def test_replicas_share_the_index_the_bounds_and_the_refusals(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas on one PostgreSQL database and one artifact folder: what one stored, the
    other lists (without reading the file) and counts, and it refuses the other tenant too."""
    with (
        serve(postgres_url, tmp_path, monkeypatch, max_artifacts=1) as (first, _),
        serve(postgres_url, tmp_path, monkeypatch, max_artifacts=1) as (second, app),
    ):
        job_id = new_job(first)
        stored = put(first, job_id, "model.pt", b"weights", ACME).json()
        assert listed(second, job_id) == [stored]
        assert put(second, job_id, "forged.pt", b"x", GLOBEX).status_code == 404
        assert put(second, job_id, "model.pt", b"forged", GLOBEX).status_code == 404
        assert error_of(put(second, job_id, "more.pt", b"m", ACME))["code"] == "too_many_artifacts"
        assert app.state.jobs.artifacts.path(job_id, "model.pt").read_bytes() == b"weights"
        assert listed(first, job_id) == [stored]
