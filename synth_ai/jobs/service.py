"""`JobsService`: the jobs of one process, their durable log and their live buses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from synth_ai.batch_writer import WriterUnavailable
from synth_ai.storage import DatabaseURL

from .artifacts import ArtifactStore
from .bus import JobBus, RingBudget
from .leases import Leases
from .log import JobEventLog
from .models import EventIn, JobEvent, JobState, sse_name
from .replicas import ReplicaFeed
from .settings import StreamSettings

DEFAULT_JOBS_DB = Path("traces/jobs.db")
DEFAULT_ARTIFACTS = Path("traces/jobs.artifacts")
LATER_ATTEMPTS = 12  # each waits up to the writer's put timeout (5 s) for room
MAX_WAITING = 10_000
"""Posts of one job that may wait for room in the log's queue; past it they are lost (counted)."""
CATCH_UP_PAGE = 500
CATCH_UP_BACKOFF_S = (0.05, 5.0)
"""A failed read of the log ahead is tried again after 0.05 s, doubling up to 5 s."""

logger = logging.getLogger("synth_ai.jobs")

DelayPoint = Callable[[str, str], Awaitable[None]]
"""`(point, job_id)`: awaited at the named points of opening, loading and catching up."""


class JobsService:
    """Creates jobs, stores their events, and answers snapshots and event pages.

    The log is the truth: an event reaches a bus (and so any stream) only after its commit,
    and in seq order. Events committed here are published at once; on a store other replicas
    write too, their events arrive as hints and are read from the log (`ReplicaFeed`).
    Blocking database work runs in worker threads or the log's writer; buses live on the loop.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | DatabaseURL = DEFAULT_JOBS_DB,
        settings: StreamSettings | None = None,
        artifacts_dir: str | os.PathLike[str] | None = None,
    ):
        self.settings = settings or StreamSettings.from_environment()
        self.log = JobEventLog(db, on_commit=self._committed)
        if artifacts_dir is None:
            path = self.log.url.path
            artifacts_dir = path.with_suffix(".artifacts") if path else DEFAULT_ARTIFACTS
        self.artifacts = ArtifactStore(
            Path(artifacts_dir), self.log.database, self.settings.artifact_limits
        )
        self.token_secret = self.settings.token_secret or self.log.secret("sse_token")
        """Signs stream tokens: `SSE_TOKEN_SECRET`, else the one kept with the database."""
        self.leases = Leases(self.log, self.settings.lease_s)
        self._buses: dict[str, JobBus] = {}
        """The hot jobs' buses; a bus is here only once its job was read (see `bus`)."""
        self._ring_budget = RingBudget(self.settings.ring_total_bytes)
        self._loading: dict[str, asyncio.Task[JobBus | None]] = {}
        """The one load under way per job, shared by everyone asking meanwhile."""
        self._joining: Counter[str] = Counter()
        """Per job: callers waiting for its bus, which is therefore not evicted."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._later: set[concurrent.futures.Future[None]] = set()
        self._waiting: dict[str, deque[Sequence[EventIn]]] = {}
        """Per job: posts waiting for room in the log's queue, oldest first."""
        self._waiting_lock = threading.Lock()
        self._catching_up: dict[str, bool] = {}
        """Jobs whose bus is reading the log ahead; True when a newer hint came meanwhile."""
        self._background: set[asyncio.Task[Any]] = set()
        self._feed: ReplicaFeed | None = None
        self.delay_point: DelayPoint | None = None
        """For tests of races: awaited at `open` (a caller asks for a bus), `load` (the job
        was read, its bus not yet made) and `catch_up` (before each read of the log ahead), so
        a test can hold one caller there (or fail it) while others go on. None in service."""

    async def _at(self, point: str, job_id: str) -> None:
        if self.delay_point is not None:
            await self.delay_point(point, job_id)

    @property
    def subscriber_count(self) -> int:
        return sum(len(bus.subscribers) for bus in self._buses.values())

    def _bind_loop(self) -> None:
        """On first use from a loop: start the leases' round and, on a shared store, the
        replica feed."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._spawn(self.leases.run())
        if self.log.database.shared:
            self._feed = ReplicaFeed(self.log, self._loop, self._hint, self._resync)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _committed(self, events: list[JobEvent]) -> None:
        """From the log's writer thread, in commit order: hand events to the loop's buses."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed; the log has them
                self._loop.call_soon_threadsafe(self._publish, events)

    def _publish(self, events: list[JobEvent]) -> None:
        for event in events:
            bus = self._buses.get(event.job_id)
            if bus is None:
                continue
            if event.job_id not in self._catching_up and event.seq <= bus.last_seq + 1:
                bus.publish(event)
            else:  # events it has not heard of come first (another replica's): the log has them
                self._catch_up(event.job_id)
        self._shed_rings()

    def _shed_rings(self) -> None:
        """Past the process's ring budget the idlest buses drop their rings, until within it
        (their streams replay from the log)."""
        if not self._ring_budget.exceeded:
            return
        for bus in sorted(self._buses.values(), key=lambda bus: bus.updated_at):
            bus.drop_ring()
            if not self._ring_budget.exceeded:
                return

    def _hint(self, job_id: str, seq: int) -> None:
        """Some replica committed events of `job_id` up to `seq`."""
        bus = self._buses.get(job_id)
        if bus is not None and seq > bus.last_seq:
            self._catch_up(job_id)

    def _resync(self) -> None:
        """The feed (re)connected: notifications may have been missed, so every hot job reads
        the log past its last seq."""
        for job_id in list(self._buses):
            self._catch_up(job_id)

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

    async def create(
        self,
        kind: str,
        config: dict[str, Any],
        metadata: dict[str, Any],
        tenant: str | None = None,
        *,
        run_here: bool = False,
    ) -> dict[str, Any]:
        """A new job, owned by `tenant` (None: the operator's); `run_here`: this server runs
        it, holding its lease from the start."""
        self._bind_loop()
        job_id = f"job_{uuid.uuid4().hex[:16]}"
        lease = (self.leases.owner, self.leases.ttl_s) if run_here else None
        job = await asyncio.to_thread(
            self.log.create_job, job_id, kind, config, metadata, tenant, lease
        )
        if run_here:
            self.leases.held.add(job_id)
        bus = self._buses[job_id] = self._new_bus(job_id, 0, JobState.QUEUED)
        bus.tenant = tenant
        self._evict()
        return job

    def reading_ahead(self, job_id: str) -> bool:
        """Whether a read of the job's log past its bus is under way (a loaded bus reads once)."""
        return job_id in self._catching_up

    def live_bus(self, job_id: str) -> JobBus | None:
        """The job's bus if it is in memory now (no I/O)."""
        return self._buses.get(job_id)

    async def bus(self, job_id: str) -> JobBus | None:
        """The job's bus, loaded from the log when not in memory; None for an unknown job.

        Everyone asking while a job loads shares its one load, and no bus is evicted while
        someone waits for it: the caller gets it registered, in the turn it resumes in, so a
        stream that subscribes at once is counted and hears every event. A failed load is
        not kept: the next caller tries again.
        """
        self._bind_loop()
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

    async def emit(
        self, job_id: str, events: Sequence[EventIn], key: str | None = None
    ) -> list[JobEvent]:
        """Store events; answers them numbered once committed (`key`: an idempotency key).

        Raises `JobNotFound`, `JobFinished` or `WriterUnavailable` (see `JobEventLog.append`).
        """
        self._bind_loop()
        return await self.log.append(job_id, events, key)

    def emit_nowait(self, job_id: str, events: Sequence[EventIn]) -> bool:
        """Queue events from any thread without waiting for the commit (no seq answered).

        When the log's queue is full, metrics give way (counted as lost, as the design allows:
        a later value supersedes them), while statuses, logs and artifacts wait for room in a
        task on the service's loop, in the order they came, so a burst never costs a job its
        final status nor puts it before the job's last log.
        """
        metrics = all(sse_name(e.type) == "metric" for e in events)
        if self._loop is None:
            return self.log.append_nowait(job_id, events)
        with self._waiting_lock:
            waiting = self._waiting.get(job_id)
            if waiting is not None:  # earlier events wait for room: these go behind, in order
                if metrics or len(waiting) >= MAX_WAITING:
                    self.log.count_loss(1, "queue full")
                    return False
                waiting.append(events)
                return True
            if self.log.append_nowait(job_id, events, count_loss=metrics):
                return True
            if metrics:
                return False
            self._waiting[job_id] = deque([events])
        later = asyncio.run_coroutine_threadsafe(self._store_waiting(job_id), self._loop)
        self._later.add(later)
        later.add_done_callback(self._later.discard)
        return True

    async def _store_waiting(self, job_id: str) -> None:
        """Store a job's waiting events one post after another, in the order they came."""
        while True:
            with self._waiting_lock:
                waiting = self._waiting[job_id]
                if not waiting:
                    del self._waiting[job_id]
                    return
                events = waiting[0]
            await self._emit_later(job_id, events)
            with self._waiting_lock:
                waiting.popleft()

    async def _emit_later(self, job_id: str, events: Sequence[EventIn]) -> None:
        for _ in range(LATER_ATTEMPTS):
            try:
                await self.log.append(job_id, events)
                return
            except WriterUnavailable:
                continue  # still full after the writer's put timeout: wait again
            except Exception as exc:
                logger.warning("job %s: events not stored: %s", job_id, exc)
                return
        logger.warning("job %s: events not stored: the event log stayed full", job_id)

    async def snapshot(self, job_id: str) -> dict[str, Any] | None:
        job = await asyncio.to_thread(self.log.get_job, job_id)
        if job is None:
            return None
        bus = self._buses.get(job_id)
        job["streams"] = len(bus.subscribers) if bus is not None else 0
        return job

    def streams_of(self, tenant: str | None) -> int:
        """Open streams on the jobs of one tenant (no I/O)."""
        return sum(len(b.subscribers) for b in self._buses.values() if b.tenant == tenant)

    async def events(
        self, job_id: str, after: int, limit: int, names: list[str] | None
    ) -> list[JobEvent]:
        """A page of events after a cursor: from the ring when it reaches back and holds all
        that is committed, else the log. While the job catches up (a hint of events its bus has
        not heard of, our own commits included), the ring may lack what a 2xx acknowledged."""
        bus = self._buses.get(job_id)
        current = bus is not None and not self.reading_ahead(job_id)
        tail = bus.ring_after(after) if current and bus is not None else None
        if tail is not None:
            return [e for e in tail if not names or e.sse_name in names or e.type in names][:limit]
        return await asyncio.to_thread(
            self.log.events, job_id, after=after, limit=limit, names=names
        )

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for bus in self._buses.values():
            bus.close()
        if self._feed is not None:
            await asyncio.to_thread(self._feed.close)
        await asyncio.to_thread(self.log.close)

    # named like the route it serves; last, so `list` means the builtin in the annotations above
    async def list(self, limit: int = 50, tenant: str | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.log.list_jobs, limit, tenant)
