"""Two replicas' group commits naming the same jobs in opposite orders (found by the jobs soak,
tests/test_jobs_soak.py): each locked one job's row and waited for the other's, PostgreSQL broke
the deadlock by failing one batch, and its posts answered 503. Rows are now locked in the order
of their job ids. The interleaving is driven through the log's delay points, never by sleeping.
"""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from synth_ai.jobs import EventIn
from synth_ai.jobs.log import JobEventLog


class Interleave:
    """The writer's hook: holds its first batch until `release_batch`, then, in the next batch,
    holds right after storing its first append (its job's row locked) until `release_lock`."""

    def __init__(self) -> None:
        self.batch_held, self.release_batch = threading.Event(), threading.Event()
        self.holding_lock, self.release_lock = threading.Event(), threading.Event()
        self.stored = 0

    def __call__(self, name: str) -> None:
        if name == "batch" and not self.batch_held.is_set():
            self.batch_held.set()
            self.release_batch.wait(30)
        elif name == "stored":
            self.stored += 1
            if self.stored == 2:  # the first is the held batch's own append
                self.holding_lock.set()
                self.release_lock.wait(30)


def line(text: str) -> EventIn:
    return EventIn(type="system.log", message=text)


def someone_waits_for_a_lock(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("attempt", range(10))
def test_batches_naming_jobs_in_opposite_orders_both_commit(
    attempt: int, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the second batch waits on the first's row lock while the test sees both inside: a
    # loaded machine must not turn that wait into a lock timeout
    monkeypatch.setenv("SYNTH_PG_LOCK_TIMEOUT_SECS", "60")
    logs = [JobEventLog(postgres_url), JobEventLog(postgres_url)]
    for job_id in ("job_a", "job_b"):
        logs[0].create_job(job_id, "custom", {}, {})
    hooks = [Interleave(), Interleave()]
    for log, hook in zip(logs, hooks, strict=True):
        log.delay_point = hook

    async def scenario() -> list[list[int]]:
        async def batch(log: JobEventLog, hook: Interleave, first: str, second: str) -> list[int]:
            held = asyncio.create_task(log.append(first, [line("held")]))
            await asyncio.to_thread(hook.batch_held.wait, 10)
            appends = [
                asyncio.create_task(log.append(job_id, [line(job_id)]))
                for job_id in (first, second)
            ]
            await asyncio.wait(appends, timeout=0)  # both queued: the next batch holds both
            hook.release_batch.set()
            answers = await asyncio.gather(held, *appends)
            return [events[0].seq for events in answers]

        runs = [
            asyncio.create_task(batch(logs[0], hooks[0], "job_a", "job_b")),
            asyncio.create_task(batch(logs[1], hooks[1], "job_b", "job_a")),
        ]

        def both_in() -> bool:  # one holds a row at its delay point; the other holds one too,
            # or waits for the first's row
            holding = [hook.holding_lock.is_set() for hook in hooks]
            return all(holding) or (any(holding) and someone_waits_for_a_lock(postgres_url))

        async with asyncio.timeout(10):
            while not await asyncio.to_thread(both_in):
                await asyncio.to_thread(hooks[0].holding_lock.wait, 0.05)
        for hook in hooks:
            hook.release_lock.set()
        async with asyncio.timeout(20):
            return list(await asyncio.gather(*runs))

    try:
        first, second = asyncio.run(scenario())
    finally:
        for log in logs:
            log.close()
    # every append stored: the held one, then both logs' own, on each job
    assert sorted([first[0], first[1], second[2]]) == [1, 2, 3]  # job_a
    assert sorted([second[0], second[1], first[2]]) == [1, 2, 3]  # job_b
    assert all(log.write_errors == 0 for log in logs)
