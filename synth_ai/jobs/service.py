"""`JobsService`: the jobs of one process: their durable log, events posted from any thread,
and their live buses (`LiveBuses`, in buses.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synth_ai.batch_writer import WriterUnavailable
from synth_ai.storage import DatabaseURL

from .artifacts import ArtifactStore
from .bus import JobBus
from .buses import DelayPoint, LiveBuses
from .leases import Leases
from .log import JobEventLog
from .models import EventIn, JobEvent, sse_name
from .replicas import ReplicaFeed
from .settings import StreamSettings

DEFAULT_JOBS_DB = Path("traces/jobs.db")
DEFAULT_ARTIFACTS = Path("traces/jobs.artifacts")
LATER_ATTEMPTS = 12  # each waits up to the writer's put timeout (5 s) for room
MAX_WAITING = 10_000
"""Posts of one job that may wait for room in the log's queue; past it they are lost (counted)."""

logger = logging.getLogger("synth_ai.jobs")


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
        self.buses = LiveBuses(self.log, self.settings, self._spawn, self._at)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._later: set[concurrent.futures.Future[None]] = set()
        self._waiting: dict[str, deque[Sequence[EventIn]]] = {}
        """Per job: posts waiting for room in the log's queue, oldest first."""
        self._waiting_lock = threading.Lock()
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
        return sum(len(bus.subscribers) for bus in self.buses.all())

    def _bind_loop(self) -> None:
        """On first use from a loop: start the leases' round and, on a shared store, the
        replica feed."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._spawn(self.leases.run())
        if self.log.database.shared:
            self._feed = ReplicaFeed(self.log, self._loop, self.buses.hint, self.buses.resync)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _committed(self, events: list[JobEvent]) -> None:
        """From the log's writer thread, in commit order: hand events to the loop's buses."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed; the log has them
                self._loop.call_soon_threadsafe(self.buses.publish, events)

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
        self.buses.created(job_id, tenant)
        return job

    def reading_ahead(self, job_id: str) -> bool:
        """Whether a read of the job's log past its bus is under way (a loaded bus reads once)."""
        return self.buses.reading_ahead(job_id)

    def live_bus(self, job_id: str) -> JobBus | None:
        """The job's bus if it is in memory now (no I/O)."""
        return self.buses.get(job_id)

    async def bus(self, job_id: str) -> JobBus | None:
        """The job's bus, loaded from the log when not in memory; None for an unknown job
        (see `LiveBuses.bus`)."""
        self._bind_loop()
        return await self.buses.bus(job_id)

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
        bus = self.buses.get(job_id)
        job["streams"] = len(bus.subscribers) if bus is not None else 0
        return job

    def streams_of(self, tenant: str | None) -> int:
        """Open streams on the jobs of one tenant (no I/O)."""
        return sum(len(b.subscribers) for b in self.buses.all() if b.tenant == tenant)

    async def events(
        self, job_id: str, after: int, limit: int, names: list[str] | None
    ) -> list[JobEvent]:
        """A page of events after a cursor: from the ring when it reaches back and holds all
        that is committed, else the log. While the job catches up (a hint of events its bus has
        not heard of, our own commits included), the ring may lack what a 2xx acknowledged."""
        bus = self.buses.get(job_id)
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
        self.buses.close()
        if self._feed is not None:
            await asyncio.to_thread(self._feed.close)
        await asyncio.to_thread(self.log.close)

    # named like the route it serves; last, so `list` means the builtin in the annotations above
    async def list(self, limit: int = 50, tenant: str | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.log.list_jobs, limit, tenant)
