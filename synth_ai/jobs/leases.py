"""Leases on the jobs a server runs itself, so that none stays `running` after its server died.

The server running a job renews its lease every third of the lease time; every server (one
process on SQLite, every replica on PostgreSQL) looks every half lease time for unfinished
jobs whose lease ran out, and fails them with a status saying why. The log takes each such job
over in the transaction that stores that status, so exactly one server does it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from .log import JobEventLog, JobFinished, JobNotFound, LeaseHeld

logger = logging.getLogger("synth_ai.jobs")

EXPIRED = "the server running this job stopped (its lease ran out)"


class Leases:
    def __init__(self, log: JobEventLog, ttl_s: float) -> None:
        self.log = log
        self.ttl_s = ttl_s
        self.owner = uuid.uuid4().hex
        """This server, as lease owner (a new one each start)."""
        self.held: set[str] = set()

    async def hold(self, job_id: str) -> None:
        """This server runs the job: take its lease now and keep renewing it."""
        self.held.add(job_id)
        await asyncio.to_thread(self.log.renew_leases, self.owner, [job_id], self.ttl_s)

    def forget(self, job_id: str) -> None:
        """This server stopped running the job: stop renewing. Its terminal status already
        cleared the lease; without one, the lease runs out and the job is failed."""
        self.held.discard(job_id)

    async def run(self) -> None:
        """Renew what this server holds and fail what others left, until cancelled."""
        next_sweep = 0.0
        while True:
            try:
                await asyncio.to_thread(
                    self.log.renew_leases, self.owner, sorted(self.held), self.ttl_s
                )
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.ttl_s / 2
                    await self.sweep()
            except Exception as exc:  # the database is down: try again next round
                logger.warning("job leases: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.ttl_s / 3)

    async def sweep(self, now: float | None = None) -> list[str]:
        """Fail every unfinished job whose lease ran out before `now` (default: now);
        answers the ones this server failed."""
        now = time.time() if now is None else now
        failed = []
        for job_id in await asyncio.to_thread(self.log.expired_leases, now):
            try:
                await self.log.fail_expired(job_id, now, EXPIRED)
            except (LeaseHeld, JobFinished, JobNotFound):
                continue  # renewed, finished or taken over meanwhile
            logger.warning("job %s failed: %s", job_id, EXPIRED)
            failed.append(job_id)
        return failed
