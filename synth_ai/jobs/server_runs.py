"""What a job kind that runs its jobs on the server's own loop (`eval`, `prompt_learning`) does
around each run, the same for every kind: start it or fail it, stop it on cancel, let go of
its lease.

The job's lease, taken when the job is made, is renewed only while the job can run: a start
that fails (its folder cannot be made, the log does not answer, a resumed job has no state)
ends the job `failed`, saying why, and lets go of the lease, rather than leave it `queued`
under a lease renewed for as long as the server lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .bus import JobBus, Subscription
from .log import JobFinished
from .models import EventIn, JobState
from .service import JobsService

Run = Callable[[asyncio.Event], Awaitable[object]]
"""A job's run, given the event set when the job is canceled."""


class ServerRuns:
    """The runs of one job kind, each a task on the server's loop."""

    def __init__(
        self,
        kind: str,
        logger: logging.Logger,
        reported: tuple[type[Exception], ...] = (),
    ) -> None:
        """`reported`: failures the run ends its job with itself (a failed check or
        preflight), logged in one line; any other failure ends the job here."""
        self.kind = kind
        self.logger = logger
        self.reported = reported
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self, service: JobsService, job_id: str, prepare: Callable[[], Awaitable[Run]]
    ) -> None:
        """Make the run (`prepare`, on the job's start) and start it; a failure to do either
        fails the job, saying why."""
        bus: JobBus | None = None
        statuses: Subscription | None = None
        try:
            bus = await service.bus(job_id)
            if bus is None:
                raise LookupError(f"job {job_id} is not in the log")
            # subscribed before the run is made: a bus with a subscriber is never evicted, so
            # a cancel posted while `prepare` works reaches this bus, not a reloaded one
            statuses = bus.subscribe(["status"])
            run = await prepare()
        except BaseException as exc:  # a cancelled request too: the job must not stay queued
            if bus is not None and statuses is not None:
                bus.unsubscribe(statuses)
            service.leases.forget(job_id)
            self.logger.warning("%s job %s did not start: %r", self.kind, job_id, exc)
            await fail(service, job_id, f"the job did not start: {told(exc)}")
            if not isinstance(exc, Exception):
                raise
            return
        task = asyncio.create_task(
            self._run(service, job_id, bus, statuses, run), name=f"{self.kind}-{job_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, service: JobsService, job_id: str, bus: JobBus, statuses: Subscription, run: Run
    ) -> None:
        cancel = asyncio.Event()
        watcher = asyncio.create_task(_watch_for_cancel(bus, statuses, cancel))
        try:
            await run(cancel)
        except self.reported as exc:
            self.logger.warning("%s job %s: %s", self.kind, job_id, exc)
        except Exception as exc:
            self.logger.exception("%s job %s failed", self.kind, job_id)
            await fail(service, job_id, told(exc))
        finally:
            watcher.cancel()
            service.leases.forget(job_id)


def told(exc: BaseException) -> str:
    """An error as the job's creator reads it: an OSError in its own words, without the
    server's paths (the log keeps the whole of it)."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{type(exc).__name__}: {why}"


async def _watch_for_cancel(bus: JobBus, statuses: Subscription, cancel: asyncio.Event) -> None:
    try:
        while not bus.state.terminal:
            await statuses.wait(3600)
            statuses.drain()
        if bus.state is JobState.CANCELED:
            cancel.set()
    finally:
        bus.unsubscribe(statuses)


async def fail(service: JobsService, job_id: str, reason: str) -> None:
    """End the job `failed` with `reason` (a terminal status also clears its lease), unless it
    ended already; a log that does not answer leaves it to the lease's expiry."""
    failed = EventIn(type="job.status", level="error", message=reason, data={"state": "failed"})
    try:
        await service.emit(job_id, [failed])
    except JobFinished:
        pass
    except Exception as exc:
        logger = logging.getLogger("synth_ai.jobs")
        logger.warning("job %s: failing it did not work either: %s", job_id, exc)
