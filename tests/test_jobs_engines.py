"""What the job log promises on both engines, in process: leases fail abandoned jobs exactly
once, and on PostgreSQL a replica that missed notifications still delivers every event."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.jobs import EventIn, JobsService, JobState, StreamSettings


def log_events(count: int) -> list[EventIn]:
    return [EventIn(type="system.log", message=f"line {n}") for n in range(count)]


def test_a_job_left_by_a_dead_server_is_failed_once_its_lease_runs_out(
    database_url: str,
) -> None:
    async def scenario() -> None:
        settings = StreamSettings(lease_s=30)
        first = JobsService(database_url, settings)
        job = await first.create("eval", {}, {}, run_here=True)
        held = await first.create("eval", {}, {}, run_here=True)
        await first.emit(job["job_id"], [EventIn(type="job.status", data={"state": "running"})])
        await first.close()  # the server stops: nobody renews the leases any more

        second = JobsService(database_url, settings)
        try:
            assert await second.leases.sweep() == []  # not run out yet
            second.log.renew_leases("someone-alive", [held["job_id"]], 3600)
            later = time.time() + 60
            assert await second.leases.sweep(now=later) == [job["job_id"]]
            assert await second.leases.sweep(now=later) == []  # exactly once
            snapshot = await second.snapshot(job["job_id"])
            assert snapshot is not None and snapshot["state"] == JobState.FAILED
            last = (await second.events(job["job_id"], 0, 100, None))[-1]
            assert last.state is JobState.FAILED and "lease ran out" in (last.message or "")
            renewed = await second.snapshot(held["job_id"])
            assert renewed is not None and renewed["state"] == JobState.QUEUED
        finally:
            await second.close()

    asyncio.run(scenario())


def test_missed_or_merged_notifications_lose_no_event(postgres_url: str) -> None:
    """Notifications are hints: with the feed stopped, one later hint (or a resync after a
    reconnection) makes the replica read and publish everything it missed, in order."""

    async def scenario() -> None:
        writer, reader = JobsService(postgres_url), JobsService(postgres_url)
        try:
            job_id = (await writer.create("custom", {}, {}))["job_id"]
            bus = await reader.bus(job_id)
            assert bus is not None
            subscription = bus.subscribe()
            assert reader._feed is not None
            reader._feed.close()  # every notification from here on is lost

            first = await writer.emit(job_id, log_events(30))
            reader.buses.hint(job_id, first[-1].seq)  # one hint stands for all 30
            second = await writer.emit(job_id, log_events(20))
            reader.buses.resync()  # as after a reconnection

            received: list[int] = []
            async with asyncio.timeout(10):
                while len(received) < 50:
                    await subscription.wait(10)
                    received += [event.seq for event in subscription.drain()]
            assert received == [e.seq for e in [*first, *second]] == list(range(1, 51))
        finally:
            await writer.close()
            await reader.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("db", "exit_code", "says"),
    [
        ("mysql://root@localhost/jobs", 2, "unknown database scheme 'mysql'"),
        ("sqlite://jobs.db", 2, "a SQLite URL is sqlite:///relative/file.db"),
        (
            "postgresql://someone:hunter2hunter2@127.0.0.1:1/jobs",
            1,
            "cannot open postgresql://someone:***@127.0.0.1:1/jobs",
        ),
    ],
)
def test_jobs_serve_refuses_a_store_it_cannot_open_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: str, exit_code: int, says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["jobs", "serve", "--db", db])
    assert result.exit_code == exit_code, result.output
    assert says in result.output
    assert "Traceback" not in result.output and "hunter2" not in result.output
    assert list(tmp_path.iterdir()) == []  # no file or folder made for a URL
