"""The jobs server's `log_write_errors` (at `/`) counts the log failing, not callers refused
(found by the jobs soak, tests/test_jobs_soak.py): a post to a cancelled job answered 409 and
counted a write error, so the count said the log was failing when it was not. A refusal nobody
hears of (an event queued without waiting) is still a loss, and still counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from synth_ai.jobs import EventIn, create_jobs_app
from synth_ai.jobs.log import JobEventLog, JobFinished, JobNotFound
from synth_ai.task import serve_in_background

from .conftest import KEY

HEADERS = {"X-API-Key": KEY}


def test_refused_posts_are_answered_and_not_counted_as_write_errors(database_url: str) -> None:
    with serve_in_background(create_jobs_app(database_url)) as url:
        job_id = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
        assert httpx.post(f"{url}/api/jobs/{job_id}/cancel", headers=HEADERS).status_code == 200
        late = {"type": "job.status", "data": {"state": "running"}}
        refused = httpx.post(f"{url}/api/jobs/{job_id}/events", json=late, headers=HEADERS)
        assert refused.status_code == 409, refused.text
        line = {"type": "system.log", "message": "stored"}
        stored = httpx.post(f"{url}/api/jobs/{job_id}/events", json=line, headers=HEADERS)
        assert stored.status_code == 201
        assert httpx.get(url).json()["log_write_errors"] == 0


def test_a_refused_append_nobody_waits_for_is_counted(tmp_path: Path) -> None:
    log = JobEventLog(tmp_path / "jobs.db")
    try:

        async def scenario() -> None:
            with pytest.raises(JobNotFound):
                await log.append("job_missing", [EventIn(type="system.log")])
            log.create_job("job_a", "custom", {}, {})
            await log.append("job_a", [EventIn(type="job.status", data={"state": "failed"})])
            with pytest.raises(JobFinished):
                await log.append("job_a", [EventIn(type="job.status", data={"state": "running"})])
            assert log.write_errors == 0
            assert log.append_nowait("job_missing", [EventIn(type="system.log")])
            # the next waited append is committed after the one queued before it
            await log.append("job_a", [EventIn(type="system.log")])

        asyncio.run(scenario())
        assert log.write_errors == 1
    finally:
        log.close()
