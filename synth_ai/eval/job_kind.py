"""The `eval` job kind: a jobs server runs evaluations itself and streams their progress."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from synth_ai.jobs import EventIn, JobEmitter, JobsService, JobState
from synth_ai.jobs.log import JobFinished
from synth_ai.jobs.masking import mask_passwords

from .models import EvalConfig
from .runner import EvalCheckFailed, EvalRun

logger = logging.getLogger("synth_ai.eval")

RESULTS_NAME = "results.jsonl"


class EvalJobKind:
    """Validates eval configs, keeps the API key and URL passwords out of the stored job, and
    runs the job as a task on the server's loop; `POST /api/jobs/{id}/cancel` stops it.

    The server decides where results go (the job's `results.jsonl` artifact), and the task app
    gets only the key the job's creator put in its config, never the server's own.

    The job's lease, taken when the job is made, is renewed only while it can run: a start
    that fails (its results folder cannot be made, the log does not answer) ends the job
    `failed`, saying why, and lets go of the lease, rather than leave it `queued` under a lease
    renewed for as long as the server lives.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def prepare(self, config: dict[str, Any]) -> tuple[dict[str, Any], EvalConfig]:
        runtime = EvalConfig.model_validate(config)
        return mask_passwords(runtime.model_dump(exclude={"api_key"})), runtime

    async def start(self, service: JobsService, job: dict[str, Any], runtime: EvalConfig) -> None:
        job_id = job["job_id"]
        try:
            await self._start(service, job_id, job["tenant"], runtime)
        except BaseException as exc:  # a cancelled request too: the job must not stay queued
            service.leases.forget(job_id)
            logger.warning("eval job %s did not start: %s: %s", job_id, type(exc).__name__, exc)
            # an OSError's own words, without the server's paths
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            await _fail(service, job_id, f"the job did not start: {type(exc).__name__}: {why}")
            if not isinstance(exc, Exception):
                raise

    async def _start(
        self, service: JobsService, job_id: str, tenant: str, runtime: EvalConfig
    ) -> None:
        bus = await service.bus(job_id)
        if bus is None:
            raise LookupError(f"job {job_id} is not in the log")
        results = service.artifacts.path(job_id, RESULTS_NAME)
        await asyncio.to_thread(results.parent.mkdir, parents=True, exist_ok=True)
        cancel = asyncio.Event()
        statuses = bus.subscribe(["status"])
        # "" and not None: the client must not fall back to this server's ENVIRONMENT_API_KEY
        config = runtime.model_copy(update={"api_key": runtime.api_key or ""})

        async def watch_for_cancel() -> None:
            try:
                while not bus.state.terminal:
                    await statuses.wait(3600)
                    statuses.drain()
                if bus.state is JobState.CANCELED:
                    cancel.set()
            finally:
                bus.unsubscribe(statuses)

        async def run() -> None:
            watcher = asyncio.create_task(watch_for_cancel())
            try:
                await EvalRun(
                    config,
                    emitter=JobEmitter(service, job_id),
                    cancel=cancel,
                    results_path=results,
                    results_url=service.artifacts.url(job_id, RESULTS_NAME),
                    results_kept=lambda: service.artifacts.record(job_id, RESULTS_NAME, tenant),
                ).run()
            except EvalCheckFailed as exc:
                logger.warning("eval job %s: %s", job_id, exc)
            except Exception as exc:
                logger.exception("eval job %s failed", job_id)
                await _fail(service, job_id, f"{type(exc).__name__}: {exc}")
            finally:
                watcher.cancel()
                service.leases.forget(job_id)

        task = asyncio.create_task(run(), name=f"eval-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _fail(service: JobsService, job_id: str, reason: str) -> None:
    """End the job `failed` with `reason` (a terminal status also clears its lease), unless it
    ended already; a log that does not answer leaves it to the lease's expiry."""
    failed = EventIn(type="job.status", level="error", message=reason, data={"state": "failed"})
    try:
        await service.emit(job_id, [failed])
    except JobFinished:
        pass
    except Exception as exc:
        logger.warning("eval job %s: failing it did not work either: %s", job_id, exc)
