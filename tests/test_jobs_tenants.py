"""Tenants: a job belongs to the key that created it; to any other tenant it does not exist."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse
from starlette.applications import Starlette

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.task import serve_in_background

from .conftest import KEY

ACME, GLOBEX = "acme-key-8a7sd6f5", "globex-key-1q2w3e4r"
TENANTS = f"acme:{ACME}, globex:{GLOBEX}"


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture
def jobs(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Starlette]]:
    """Every test using it runs on SQLite and on PostgreSQL."""
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", TENANTS)
    app = create_jobs_app(
        database_url, settings=StreamSettings(end_grace_s=0.05, max_clients_per_tenant=1)
    )
    with serve_in_background(app) as url:
        yield url, app


def test_another_tenant_gets_404_on_every_route_of_a_job(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]
    mine = httpx.post(f"{url}/api/jobs/{job_id}/events", json={"type": "x.log"}, headers=as_(ACME))
    assert mine.status_code == 201
    routes = [
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/events"),
        ("GET", "/stream"),
        ("POST", "/stream-token"),
        ("POST", "/cancel"),
        ("GET", "/artifacts"),
        ("GET", "/artifacts/results.jsonl"),
    ]
    for method, path in routes:
        answer = httpx.request(
            method, f"{url}/api/jobs/{job_id}{path}", json={"type": "x.log"}, headers=as_(GLOBEX)
        )
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["detail"]["error"]["code"] == "job_not_found"
    # nothing the other tenant tried changed the job
    snapshot = httpx.get(f"{url}/api/jobs/{job_id}", headers=as_(ACME)).json()
    assert snapshot["state"] == "queued" and snapshot["last_seq"] == 1
    # lists: each tenant its own; the operator every job
    theirs = httpx.post(f"{url}/api/jobs", json={}, headers=as_(GLOBEX)).json()["job_id"]
    listed = {
        who: {j["job_id"] for j in httpx.get(f"{url}/api/jobs", headers=as_(k)).json()["jobs"]}
        for who, k in (("acme", ACME), ("globex", GLOBEX), ("operator", KEY))
    }
    assert listed == {"acme": {job_id}, "globex": {theirs}, "operator": {job_id, theirs}}
    assert httpx.get(f"{url}/api/jobs/{theirs}", headers=as_(KEY)).status_code == 200


def test_stream_tokens_carry_their_tenant(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]
    done = {"type": "job.status", "data": {"state": "succeeded"}}
    httpx.post(f"{url}/api/jobs/{job_id}/events", json=done, headers=as_(ACME))
    token = httpx.post(f"{url}/api/jobs/{job_id}/stream-token", headers=as_(ACME)).json()["token"]
    stream = httpx.get(f"{url}/api/jobs/{job_id}/stream", params={"token": token})
    assert stream.status_code == 200 and "succeeded" in stream.text
    other = httpx.post(f"{url}/api/jobs", json={}, headers=as_(GLOBEX)).json()["job_id"]
    refused = httpx.get(f"{url}/api/jobs/{other}/stream", params={"token": token})
    assert refused.status_code == 403  # a token is for one job only


def test_a_tenants_open_streams_are_capped(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    first = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]
    second = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]

    async def scenario() -> httpx.Response:
        async with (
            httpx.AsyncClient(base_url=url, headers=as_(ACME), timeout=30) as client,
            aconnect_sse(client, "GET", f"/api/jobs/{first}/stream") as source,
        ):
            assert source.response.status_code == 200
            async for _ in source.aiter_sse():  # the retry frame: the stream is open
                break
            return await client.get(f"/api/jobs/{second}/stream")

    over = asyncio.run(scenario())
    assert over.status_code == 429 and over.headers["retry-after"] == "5"


def test_unknown_keys_are_refused_and_bad_tenant_config_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", TENANTS)
    with serve_in_background(create_jobs_app(tmp_path / "a.db")) as url:
        assert httpx.get(f"{url}/api/jobs", headers=as_("nobody")).status_code == 401
        assert httpx.get(f"{url}/api/jobs").status_code == 401
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", "acme:secret-x, not a tenant")
    with pytest.raises(ValueError, match="SYNTH_JOBS_TENANT_KEYS entry 2") as error:
        create_jobs_app(tmp_path / "b.db")
    assert "secret-x" not in str(error.value)


def test_tenants_work_without_an_operator_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVIRONMENT_API_KEY")
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", TENANTS)
    with serve_in_background(create_jobs_app(tmp_path / "a.db")) as url:
        assert httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).status_code == 201
        assert httpx.get(f"{url}/api/jobs", headers=as_("nobody")).status_code == 401


def test_artifacts_upload_list_download_and_refuse_bad_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", TENANTS)
    settings = StreamSettings(end_grace_s=0.05, max_artifact_bytes=6 * 1024 * 1024)
    with serve_in_background(create_jobs_app(tmp_path / "jobs.db", settings=settings)) as url:
        job_id = httpx.post(f"{url}/api/jobs", json={}, headers=as_(ACME)).json()["job_id"]
        blob = bytes(range(256)) * (5 * 4096)  # 5 MiB: more than other bodies may be
        for path in (f"/api/jobs/{job_id}/artifacts", f"/rl/jobs/{job_id}/artifacts"):
            put = httpx.put(
                f"{url}{path}/ckpt_0004.pt",
                params={"kind": "checkpoint", "step": 4},
                content=blob,
                headers=as_(ACME),
            )
            assert put.status_code == 201, put.text
        stored = put.json()
        assert stored == {
            "name": "ckpt_0004.pt",
            "url": f"/api/jobs/{job_id}/artifacts/ckpt_0004.pt",
            "size": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        listed = httpx.get(f"{url}/api/jobs/{job_id}/artifacts", headers=as_(ACME)).json()
        assert listed["artifacts"] == [stored]
        token = httpx.post(f"{url}/api/jobs/{job_id}/stream-token", headers=as_(ACME)).json()
        for auth in ({"headers": as_(ACME)}, {"params": {"token": token["token"]}}):
            got = httpx.get(f"{url}/rl/jobs/{job_id}/artifacts/ckpt_0004.pt", **auth)
            assert got.status_code == 200 and got.content == blob
        events = httpx.get(f"{url}/api/jobs/{job_id}/events", headers=as_(ACME)).json()
        announced = [e for e in events["events"] if e["type"] == "artifact.checkpoint"]
        assert announced[-1]["data"]["url"] == stored["url"] and announced[-1]["data"]["step"] == 4
        for bad in ("..", ".hidden", "a b", "x" * 200, "%2e%2e", "a%0Ab"):
            answer = httpx.put(
                f"{url}/api/jobs/{job_id}/artifacts/{bad}", content=b"x", headers=as_(ACME)
            )
            assert 400 <= answer.status_code < 500, bad
        too_big = httpx.put(
            f"{url}/api/jobs/{job_id}/artifacts/big.bin",
            content=b"x" * (7 * 1024 * 1024),
            headers=as_(ACME),
        )
        assert too_big.status_code == 413
        names = httpx.get(f"{url}/api/jobs/{job_id}/artifacts", headers=as_(ACME)).json()
        assert [a["name"] for a in names["artifacts"]] == ["ckpt_0004.pt"]  # nothing half-kept
        assert list((tmp_path / "jobs.artifacts" / job_id).iterdir()) == [
            tmp_path / "jobs.artifacts" / job_id / "ckpt_0004.pt"
        ]
