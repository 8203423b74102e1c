"""Artifacts that arrive: a producer's local file is uploaded to its job (RemoteEmitter, the
in-process JobEmitter, the jobs client), `emit_artifact` given a local path uploads it and
refuses one it cannot read, and a local eval's results.jsonl becomes its job's artifact."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.jobs import JobEmitter, JobsService, RemoteEmitter, create_jobs_app
from synth_ai.jobs.upload import ArtifactUploadError
from synth_ai.task import TaskAppClient, create_task_app, serve_in_background

from .conftest import KEY, make_config

HEADERS = {"X-API-Key": KEY}


@pytest.fixture
def jobs_url(tmp_path: Path) -> Iterator[str]:
    with serve_in_background(create_jobs_app(tmp_path / "jobs.db")) as url:
        yield url


def events(url: str, job_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/jobs/{job_id}/events", headers=HEADERS, timeout=10)
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


def download(url: str, job_id: str, name: str) -> bytes:
    answer = httpx.get(f"{url}/api/jobs/{job_id}/artifacts/{name}", headers=HEADERS, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_a_remote_emitter_uploads_files_after_the_events_before_them(
    jobs_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "ckpt_3.pt"
    checkpoint.write_bytes(bytes(range(256)) * 2000)  # several chunks
    report = tmp_path / "report.md"
    report.write_text("# fine\n")
    with RemoteEmitter.create_job(jobs_url, KEY) as emitter:
        emitter.emit_log("saving")
        stored = emitter.upload_artifact(checkpoint, kind="checkpoint", step=3)
        emitter.emit_artifact("report", report.as_uri())  # a file:// URL: uploaded
        emitter.emit_artifact("report", "report.md")  # a bare path too, relative
        emitter.emit_artifact("weights", "https://example.com/w.bin")  # a URL: as given
        with pytest.raises(ArtifactUploadError, match="not a file this process can read"):
            emitter.emit_artifact("report", (tmp_path / "missing.md").as_uri())
        job = emitter.job_id
    assert stored["size"] == 512_000
    assert stored["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert download(jobs_url, job, "ckpt_3.pt") == checkpoint.read_bytes()
    assert download(jobs_url, job, "report.md") == b"# fine\n"
    seen = [(e["type"], e["data"].get("url"), e["data"].get("step")) for e in events(jobs_url, job)]
    saving = next(i for i, e in enumerate(events(jobs_url, job)) if e["type"] == "system.log")
    artifacts = [s for s in seen if s[0].startswith("artifact.")]
    assert artifacts[0] == ("artifact.checkpoint", f"/api/jobs/{job}/artifacts/ckpt_3.pt", 3)
    assert seen.index(artifacts[0]) > saving
    assert ("artifact.weights", "https://example.com/w.bin", None) in artifacts
    assert not any("file:" in str(url) or "missing" in str(url) for _, url, _ in artifacts)


def test_the_jobs_client_uploads_a_file(jobs_url: str, tmp_path: Path) -> None:
    results = tmp_path / "scores.jsonl"
    results.write_text('{"seed": 1}\n')

    async def upload() -> tuple[str, dict[str, Any]]:
        async with TaskAppClient(jobs_url, KEY) as client:
            job = await client.create_job("custom", {})
            stored = await client.upload_artifact(job["job_id"], results, kind="results", step=1)
            return job["job_id"], stored

    job, stored = asyncio.run(upload())
    assert stored["name"] == "scores.jsonl"
    assert download(jobs_url, job, "scores.jsonl") == b'{"seed": 1}\n'


def test_an_in_process_emitter_uploads_on_its_loop(tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x00\x01")

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        service = JobsService(tmp_path / "inproc.db")
        try:
            job = await service.create("custom", {}, {})
            emitter = JobEmitter(service, job["job_id"])
            emitter.emit_artifact("weights", str(weights), step=2)
            with pytest.raises(ArtifactUploadError):
                emitter.emit_artifact("weights", str(tmp_path / "nope.bin"))
            await asyncio.gather(*emitter._uploads)
            listed = await asyncio.to_thread(service.artifacts.list, job["job_id"])
            stored = await service.events(job["job_id"], 0, 100, None)
            return listed, [e.type for e in stored]
        finally:
            await service.close()

    listed, types = asyncio.run(scenario())
    assert [a["name"] for a in listed] == ["w.bin"] and listed[0]["size"] == 2
    assert "artifact.weights" in types


def local_eval(tmp_path: Path, seeds: str) -> tuple[Path, str, list[dict[str, Any]], list[Any]]:
    """Run `synth-ai eval` here against a served app; its results file, and its job's id,
    artifact listing and events as the job log keeps them."""
    out = tmp_path / "results.jsonl"
    db = tmp_path / "jobs.db"
    with serve_in_background(create_task_app(make_config())) as app_url:
        ran = CliRunner().invoke(
            main, ["eval", app_url, "--seeds", seeds, "--out", str(out), "--jobs-db", str(db)]
        )
    assert ran.exit_code == 0, ran.output

    async def read() -> tuple[str, list[dict[str, Any]], list[Any]]:
        service = JobsService(db)
        try:
            (job,) = await service.list()
            listed = await asyncio.to_thread(service.artifacts.list, job["job_id"])
            stored = await service.events(job["job_id"], 0, 1000, None)
            return job["job_id"], listed, stored
        finally:
            await service.close()

    return out, *asyncio.run(read())


def test_a_local_eval_uploads_its_results_to_its_job(tmp_path: Path) -> None:
    out, job, listed, stored = local_eval(tmp_path, "0-3")
    assert [a["name"] for a in listed] == ["results.jsonl"]
    (announced,) = [e.data for e in stored if e.type == "artifact.results"]
    assert announced["url"] == f"/api/jobs/{job}/artifacts/results.jsonl"
    assert listed[0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_a_local_eval_keeps_results_past_the_jobs_artifact_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results are the server's own file: the bounds on what clients upload to a job do not
    refuse them once every rollout has run (past them, the whole eval used to fail at its end,
    as the server-side eval job never did)."""
    monkeypatch.setenv("SYNTH_JOBS_MAX_JOB_ARTIFACT_BYTES", "64")
    out, job, listed, _ = local_eval(tmp_path, "0-7")
    kept = out.read_bytes()
    assert len(kept) > 64 * 8
    assert [(a["name"], a["size"]) for a in listed] == [("results.jsonl", len(kept))]
    assert listed[0]["sha256"] == hashlib.sha256(kept).hexdigest()
    artifacts = tmp_path / "jobs.artifacts"  # beside the job log, as the service keeps them
    assert (artifacts / job / "results.jsonl").read_bytes() == kept
    assert not list(artifacts.rglob("*.part"))
