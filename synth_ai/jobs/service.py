"""`JobsService`: the jobs of one process, their buses and their durable log."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from .bus import JobBus
from .log import JobEventLog
from .models import EventIn, JobEvent, JobState
from .settings import StreamSettings

DEFAULT_JOBS_DB = Path("traces/jobs.db")


class JobsService:
    """Creates jobs, routes events to their bus, and answers snapshots and event pages.

    Blocking SQLite work runs in worker threads; the bus is on the event loop.
    """

    def __init__(
        self, db_path: str | Path = DEFAULT_JOBS_DB, settings: StreamSettings | None = None
    ):
        self.settings = settings or StreamSettings.from_environment()
        self.log = JobEventLog(db_path)
        self._buses: dict[str, JobBus] = {}

    @property
    def subscriber_count(self) -> int:
        return sum(len(bus.subscribers) for bus in self._buses.values())

    async def create(
        self, kind: str, config: dict[str, Any], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        job_id = f"job_{uuid.uuid4().hex[:16]}"
        job = await asyncio.to_thread(self.log.create_job, job_id, kind, config, metadata)
        self._buses[job_id] = self._new_bus(job_id, 0, JobState.QUEUED)
        self._evict()
        return job

    def live_bus(self, job_id: str) -> JobBus | None:
        """The job's bus if it is in memory now (no I/O)."""
        return self._buses.get(job_id)

    async def bus(self, job_id: str) -> JobBus | None:
        """The job's bus, rebuilt from the log after a restart; None for an unknown job."""
        if job_id in self._buses:
            return self._buses[job_id]
        job = await asyncio.to_thread(self.log.get_job, job_id)
        if job is None:
            return None
        last_seq = await asyncio.to_thread(self.log.last_seq, job_id)
        bus = self._buses.setdefault(
            job_id, self._new_bus(job_id, last_seq, JobState(job["state"]))
        )
        self._evict()
        return bus

    def _new_bus(self, job_id: str, last_seq: int, state: JobState) -> JobBus:
        s = self.settings
        return JobBus(
            job_id,
            last_seq=last_seq,
            state=state,
            persist=self.log.append,
            ring_size=s.ring_events,
            ring_window_s=s.ring_window_s,
            max_metric_hz=s.max_metric_hz,
            max_subscribers=s.max_clients_per_job,
            subscriber_buffer=s.subscriber_buffer,
        )

    def _evict(self) -> None:
        """Forget the idlest buses past `max_buses` (their events stay in the log)."""
        excess = len(self._buses) - self.settings.max_buses
        if excess <= 0:
            return
        idle = sorted(
            (bus for bus in self._buses.values() if not bus.subscribers),
            key=lambda bus: bus.updated_at,
        )
        for bus in idle[:excess]:
            bus.close()
            del self._buses[bus.job_id]

    async def emit(self, job_id: str, events: list[EventIn]) -> list[JobEvent] | None:
        bus = await self.bus(job_id)
        if bus is None:
            return None
        return [bus.emit(event) for event in events]

    async def snapshot(self, job_id: str) -> dict[str, Any] | None:
        job = await asyncio.to_thread(self.log.get_job, job_id)
        if job is None:
            return None
        bus = self._buses.get(job_id)
        if bus is not None:
            job["state"] = bus.state.value
            job["last_seq"] = bus.last_seq
            job["updated_at"] = max(job["updated_at"], bus.updated_at)
        job["streams"] = len(bus.subscribers) if bus is not None else 0
        return job

    async def list(self, limit: int = 50) -> list[dict[str, Any]]:
        jobs = await asyncio.to_thread(self.log.list_jobs, limit)
        for job in jobs:
            bus = self._buses.get(job["job_id"])
            if bus is not None:
                job["state"], job["last_seq"] = bus.state.value, bus.last_seq
        return jobs

    async def events(
        self, job_id: str, after: int, limit: int, names: list[str] | None
    ) -> list[JobEvent]:
        """A page of events after a cursor: the log, then the ring for what is not flushed yet."""
        page = await asyncio.to_thread(
            self.log.events, job_id, after=after, limit=limit, names=names
        )
        bus = self._buses.get(job_id)
        if bus is not None and len(page) < limit:
            cursor = page[-1].seq if page else after
            tail = bus.ring_after(cursor) or []
            wanted = [e for e in tail if not names or e.sse_name in names or e.type in names]
            page += wanted[: limit - len(page)]
        return page

    async def close(self) -> None:
        for bus in self._buses.values():
            bus.close()
        await asyncio.to_thread(self.log.close)
