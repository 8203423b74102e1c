"""The `prompt_learning` job kind on a real jobs server (uvicorn on loopback), beside `eval`:

- its artifacts (`best_prompt.json`, `candidates.json`, `run_state.json`) are in the artifact
  index, so `GET /api/jobs/{id}/artifacts` lists them with the sha256 and size of the bytes a
  download gives, and they count against the job's and the tenant's bounds;
- a start that fails (its folder cannot be made, a resumed job has no state) ends the job
  `failed` at once, saying why without the server's paths, and no lease is renewed;
- URL passwords (`user:password@`) are masked in the stored config.

The math app and the policy/reflection stand-in (an OFFLINE FAKE of an LLM) serve in-process.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from synth_ai.jobs import JobsService, StreamSettings, create_jobs_app
from synth_ai.optimize import PromptLearningJobKind
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY
from .test_jobs_log_faults import lease_of
from .test_optimize_e2e import config_text

HEADERS = {"X-API-Key": KEY}
ARTIFACTS = ["best_prompt.json", "candidates.json", "run_state.json"]


def jobs_app(db: Path, **options: Any) -> Any:
    return create_jobs_app(
        db,
        settings=StreamSettings(end_grace_s=0.05),
        kinds={"prompt_learning": PromptLearningJobKind()},
        **options,
    )


def job_config(app: str, policy: str, budget: int = 24) -> dict[str, Any]:
    return tomllib.loads(config_text(app, policy, budget=budget))


async def run_to_the_end(url: str, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    async with TaskAppClient(url, KEY) as client:
        job = await client.create_job("prompt_learning", config)
        async for event in client.stream_job(job["job_id"]):
            if event.state is not None and event.state.terminal:
                return job["job_id"], dict(event.data)
    raise AssertionError("the stream ended without a final status")


def test_a_jobs_artifacts_are_listed_with_the_hash_of_their_bytes(
    tmp_path: Path, math_app_url: str, offline_policy_url: str
) -> None:
    config = job_config(math_app_url, offline_policy_url.removesuffix("/v1"))
    config["prompt_learning"]["task_app_api_key"] = KEY
    app = jobs_app(tmp_path / "jobs.db")
    with serve_in_background(app) as url, httpx.Client(base_url=url, headers=HEADERS) as http:
        job_id, final = asyncio.run(run_to_the_end(url, config))
        assert final["state"] == "succeeded", final
        listed = http.get(f"/api/jobs/{job_id}/artifacts").json()["artifacts"]
        assert [item["name"] for item in listed] == ARTIFACTS
        for item in listed:
            body = http.get(item["url"]).content
            assert item["size"] == len(body)
            assert item["sha256"] == hashlib.sha256(body).hexdigest()
        service: JobsService = app.state.jobs
        room = service.artifacts.index.budget(job_id, "another.bin", None).room
        limit = service.settings.artifact_limits.job_bytes
        assert room == limit - sum(item["size"] for item in listed)  # counted in the bounds


def assert_failed_at_start(url: str, db: Path, app: Any, job_id: str, tmp_path: Path) -> str:
    service: JobsService = app.state.jobs
    assert job_id not in service.leases.held
    assert lease_of(db, job_id) == ("failed", None, None)
    events = httpx.get(f"{url}/api/jobs/{job_id}/events", headers=HEADERS).json()["events"]
    assert events[-1]["data"]["state"] == "failed"
    message = str(events[-1]["message"])
    assert "did not start" in message
    assert str(tmp_path) not in message  # the server's paths stay its own
    return message


def test_a_job_whose_folder_cannot_be_made_fails_at_once(
    tmp_path: Path, math_app_url: str, offline_policy_url: str
) -> None:
    blocked = tmp_path / "artifacts"
    blocked.write_text("not a folder")
    db = tmp_path / "jobs.db"
    app = jobs_app(db, artifacts_dir=blocked)
    config = job_config(math_app_url, offline_policy_url.removesuffix("/v1"))
    config["prompt_learning"]["task_app_api_key"] = KEY
    with serve_in_background(app) as url:
        created = httpx.post(
            f"{url}/api/jobs", json={"kind": "prompt_learning", "config": config}, headers=HEADERS
        )
        assert created.status_code == 201, created.text
        assert_failed_at_start(url, db, app, created.json()["job_id"], tmp_path)


def test_resuming_a_job_with_no_state_fails_at_once(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    app = jobs_app(db)
    config = job_config("http://127.0.0.1:9", "http://127.0.0.1:9")
    with serve_in_background(app) as url:
        stateless = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
        config["resume_from"] = stateless
        created = httpx.post(
            f"{url}/api/jobs", json={"kind": "prompt_learning", "config": config}, headers=HEADERS
        )
        assert created.status_code == 201, created.text
        message = assert_failed_at_start(url, db, app, created.json()["job_id"], tmp_path)
        assert "FileNotFoundError" in message


def test_a_resumption_names_only_a_job_its_creator_owns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another tenant's job is refused as no job at all is, before anything is stored: its
    state is never carried into the caller's job (where the caller could download it)."""
    acme, globex = {"X-API-Key": "acme-key-8a7sd6f5"}, {"X-API-Key": "globex-key-1q2w3e4r"}
    monkeypatch.setenv(
        "SYNTH_JOBS_TENANT_KEYS", f"acme:{acme['X-API-Key']}, globex:{globex['X-API-Key']}"
    )
    config = job_config("http://127.0.0.1:9", "http://127.0.0.1:9")
    with serve_in_background(jobs_app(tmp_path / "jobs.db")) as url:
        theirs = httpx.post(f"{url}/api/jobs", json={}, headers=globex).json()["job_id"]
        mine = httpx.post(f"{url}/api/jobs", json={}, headers=acme).json()["job_id"]
        answers = {}
        for source in (theirs, "job_0000000000000000", mine):
            body = {"kind": "prompt_learning", "config": {**config, "resume_from": source}}
            answers[source] = httpx.post(f"{url}/api/jobs", json=body, headers=acme)
        listed = httpx.get(f"{url}/api/jobs", headers=acme).json()["jobs"]
        by_operator = httpx.post(
            f"{url}/api/jobs",
            json={"kind": "prompt_learning", "config": {**config, "resume_from": theirs}},
            headers=HEADERS,
        )
    refused = [answers[theirs], answers["job_0000000000000000"]]
    assert [a.status_code for a in refused] == [422, 422]
    assert refused[0].json() == refused[1].json()  # says nothing of whose job it is
    assert refused[0].json()["detail"]["error"]["code"] == "invalid_request"
    assert answers[mine].status_code == 201, answers[mine].text
    assert by_operator.status_code == 201, by_operator.text  # the operator may resume any
    assert len(listed) == 2  # acme's own job and its resumption, nothing from the refusals


def test_url_passwords_are_masked_in_the_stored_config(tmp_path: Path) -> None:
    secret = "pw-qzvxkjw"
    config = job_config(f"http://u:{secret}@127.0.0.1:9", f"http://p:{secret}@127.0.0.1:9")
    app = jobs_app(tmp_path / "jobs.db")
    with serve_in_background(app) as url, httpx.Client(base_url=url, headers=HEADERS) as http:
        created = http.post("/api/jobs", json={"kind": "prompt_learning", "config": config})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        answers = [created.text, http.get(f"/api/jobs/{job_id}").text, http.get("/api/jobs").text]
        stored = http.get(f"/api/jobs/{job_id}").json()["config"]["prompt_learning"]
    assert all(secret not in answer for answer in answers)
    assert stored["task_app_url"] == "http://u:***@127.0.0.1:9"
    assert stored["policy"]["inference_url"] == "http://p:***@127.0.0.1:9/v1"
    assert stored["gepa"]["mutation"]["llm_inference_url"] == "http://p:***@127.0.0.1:9/v1"
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        (row,) = conn.execute("SELECT config FROM jobs WHERE job_id = ?", [job_id]).fetchone()
    assert secret not in row
