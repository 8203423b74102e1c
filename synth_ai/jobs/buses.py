"""`LiveBuses`: the buses of one process's hot jobs, kept in step with the log.

A job's bus is made once for everyone asking (its job read first, then the bus registered, then
the log read past what was read), hears committed events in seq order, catches up from the log
when a hint says it is behind (another replica's commits, a reconnected feed), and is forgotten
when idle past the limit. The log stays the truth; a bus is only what streams hear live.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .bus import JobBus, RingBudget
from .log import JobEventLog
from .models import JobEvent, JobState
from .settings import StreamSettings

CATCH_UP_PAGE = 500
CATCH_UP_BACKOFF_S = (0.05, 5.0)
"""A failed read of the log ahead is tried again after 0.05 s, doubling up to 5 s."""

logger = logging.getLogger("synth_ai.jobs")

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
DelayPoint = Callable[[str, str], Awaitable[None]]
"""`(point, job_id)`: awaited at the named points of opening, loading and catching up."""


class LiveBuses:
    """The hot jobs' buses. `spawn` runs a background task owned by the service (cancelled at
    its close); `at` is the service's named delay point, for tests of races."""

    def __init__(
        self, log: JobEventLog, settings: StreamSettings, spawn: Spawn, at: DelayPoint
    ) -> None:
        self.log = log
        self.settings = settings
        self._spawn = spawn
        self._at = at
        self._buses: dict[str, JobBus] = {}
        """The hot jobs' buses; a bus is here only once its job was read (see `bus`)."""
        self._ring_budget = RingBudget(settings.ring_total_bytes)
        self._loading: dict[str, asyncio.Task[JobBus | None]] = {}
        """The one load under way per job, shared by everyone asking meanwhile."""
        self._joining: Counter[str] = Counter()
        """Per job: callers waiting for its bus, which is therefore not evicted."""
        self._catching_up: dict[str, bool] = {}
        """Jobs whose bus is reading the log ahead; True when a newer hint came meanwhile."""

    def get(self, job_id: str) -> JobBus | None:
        """The job's bus if it is in memory now (no I/O)."""
        return self._buses.get(job_id)

    def all(self) -> list[JobBus]:
        return list(self._buses.values())

    def reading_ahead(self, job_id: str) -> bool:
        """Whether a read of the job's log past its bus is under way (a loaded bus reads once)."""
        return job_id in self._catching_up

    def created(self, job_id: str, tenant: str | None) -> None:
        """A job this process just made: its bus starts empty, nothing to read."""
        bus = self._buses[job_id] = self._new_bus(job_id, 0, JobState.QUEUED)
        bus.tenant = tenant
        self._evict()

    def publish(self, events: list[JobEvent]) -> None:
        """Committed events, in commit order, to their jobs' buses; a bus behind reads the log
        first."""
        for event in events:
            bus = self._buses.get(event.job_id)
            if bus is None:
                continue
            if event.job_id not in self._catching_up and event.seq <= bus.last_seq + 1:
                bus.publish(event)
            else:  # events it has not heard of come first (another replica's): the log has them
                self._catch_up(event.job_id)
        self._shed_rings()

    def hint(self, job_id: str, seq: int) -> None:
        """Some replica committed events of `job_id` up to `seq`."""
        bus = self._buses.get(job_id)
        if bus is not None and seq > bus.last_seq:
            self._catch_up(job_id)

    def resync(self) -> None:
        """The feed (re)connected: notifications may have been missed, so every hot job reads
        the log past its last seq."""
        for job_id in list(self._buses):
            self._catch_up(job_id)

    async def bus(self, job_id: str) -> JobBus | None:
        """The job's bus, loaded from the log when not in memory; None for an unknown job.

        Everyone asking while a job loads shares its one load, and no bus is evicted while
        someone waits for it: the caller gets it registered, in the turn it resumes in, so a
        stream that subscribes at once is counted and hears every event. A failed load is
        not kept: the next caller tries again.
        """
        await self._at("open", job_id)
        if (bus := self._buses.get(job_id)) is not None:
            return bus
        loading = self._loading.get(job_id)
        if loading is None:
            loading = self._loading[job_id] = self._spawn(self._load(job_id))
        self._joining[job_id] += 1
        try:
            return await asyncio.shield(loading)
        finally:
            self._joining[job_id] -= 1
            if not self._joining[job_id]:
                del self._joining[job_id]

    def close(self) -> None:
        for bus in self._buses.values():
            bus.close()

    def _shed_rings(self) -> None:
        """Past the process's ring budget the idlest buses drop their rings, until within it
        (their streams replay from the log)."""
        if not self._ring_budget.exceeded:
            return
        for bus in sorted(self._buses.values(), key=lambda bus: bus.updated_at):
            bus.drop_ring()
            if not self._ring_budget.exceeded:
                return

    def _catch_up(self, job_id: str) -> None:
        if job_id in self._catching_up:
            self._catching_up[job_id] = True
            return
        self._catching_up[job_id] = False
        self._spawn(self._read_ahead(job_id))

    async def _read_ahead(self, job_id: str) -> None:
        """Publish the job's committed events past its bus's last seq, in order, until a read
        brings all there is and no newer hint came meanwhile.

        It serves whichever bus the job has when a read returns (one loaded again meanwhile
        is read for afresh), and a failed read is tried again, backing off, for as long as
        the job is hot: a stream waits for the events that end it, so none may be given up.
        """
        delay = CATCH_UP_BACKOFF_S[0]
        try:
            while (bus := self._buses.get(job_id)) is not None:
                self._catching_up[job_id] = False
                try:
                    await self._at("catch_up", job_id)
                    page = await asyncio.to_thread(
                        self.log.events, job_id, after=bus.last_seq, limit=CATCH_UP_PAGE
                    )
                except Exception as exc:
                    logger.warning("job %s: reading new events failed (%s)", job_id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, CATCH_UP_BACKOFF_S[1])
                    continue
                delay = CATCH_UP_BACKOFF_S[0]
                if self._buses.get(job_id) is not bus:
                    continue  # evicted, maybe loaded again: read for the bus it has now
                for event in page:
                    bus.publish(event)
                self._shed_rings()
                if len(page) < CATCH_UP_PAGE and not self._catching_up[job_id]:
                    return
        finally:
            self._catching_up.pop(job_id, None)

    async def _load(self, job_id: str) -> JobBus | None:
        """Read the job, then register its bus, then read the log past what was read: what
        was committed in between reached no bus, and what comes after reaches this one (or,
        while it catches up, is read in order after it)."""
        try:
            job = await asyncio.to_thread(self.log.get_job, job_id)
            await self._at("load", job_id)
        finally:
            del self._loading[job_id]
        if job is None:
            return None
        bus = self._buses[job_id] = self._new_bus(job_id, job["last_seq"], JobState(job["state"]))
        bus.tenant = job["tenant"]
        self._evict()
        self._catch_up(job_id)
        return bus

    def _new_bus(self, job_id: str, last_seq: int, state: JobState) -> JobBus:
        s = self.settings
        return JobBus(
            job_id,
            last_seq=last_seq,
            state=state,
            ring_size=s.ring_events,
            ring_bytes=s.ring_bytes,
            ring_window_s=s.ring_window_s,
            max_metric_hz=s.max_metric_hz,
            max_subscribers=s.max_clients_per_job,
            subscriber_buffer=s.subscriber_buffer,
            window_bytes=s.window_bytes,
            max_metric_names=s.max_metric_names,
            budget=self._ring_budget,
        )

    def _evict(self) -> None:
        """Forget the idlest buses past `max_buses` (their events stay in the log), never one
        with a subscriber or someone waiting to subscribe."""
        excess = len(self._buses) - self.settings.max_buses
        if excess <= 0:
            return
        idle = sorted(
            (
                bus
                for job_id, bus in self._buses.items()
                if not bus.subscribers and job_id not in self._joining
            ),
            key=lambda bus: bus.updated_at,
        )
        for bus in idle[:excess]:
            bus.close()
            del self._buses[bus.job_id]
