"""The `eval` job kind: a jobs server runs evaluations itself and streams their progress."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from synth_ai.jobs import JobEmitter, JobsService
from synth_ai.jobs.masking import mask_passwords
from synth_ai.jobs.server_runs import Run, ServerRuns
from synth_ai.task.errors import TaskAppError

from .models import EvalConfig
from .runner import EvalCheckFailed, EvalRun

logger = logging.getLogger("synth_ai.eval")

RESULTS_NAME = "results.jsonl"
PREFLIGHT_DEADLINE_S = 100.0
"""How long making an eval job waits for its preflight: under the 120 s a client (this
package's, httpx's default) waits for the answer, so a task app that never answers is refused
as `preflight_failed` rather than left to time the creator out while a job is made anyway,
and as long as that allows, for an app that starts cold (Modal scales to zero)."""


class EvalJobKind:
    """Validates eval configs, keeps the API key and URL passwords out of the stored job, and
    runs the job as a task on the server's loop (`ServerRuns`: a start that fails ends the job
    `failed`); `POST /api/jobs/{id}/cancel` stops it.

    The server decides where results go (the job's `results.jsonl` artifact), and the task app
    gets only the key the job's creator put in its config, never the server's own.
    """

    def __init__(self, preflight_deadline_s: float = PREFLIGHT_DEADLINE_S) -> None:
        self.runs = ServerRuns("eval", logger, reported=(EvalCheckFailed,))
        self.preflight_deadline_s = preflight_deadline_s

    def prepare(self, config: dict[str, Any]) -> tuple[dict[str, Any], EvalConfig]:
        runtime = EvalConfig.model_validate(config)
        return mask_passwords(runtime.model_dump(exclude={"api_key"})), runtime

    async def check(self, service: JobsService, runtime: EvalConfig, tenant: str | None) -> None:
        """The preflight, before the job is made: a run that cannot start (or whose app does
        not pass its checks within `preflight_deadline_s`) makes no job, and the creator gets
        422 `preflight_failed` naming the check (the run does not repeat it)."""
        started: list[str] = []
        deadline = asyncio.timeout(self.preflight_deadline_s)
        try:
            async with deadline:
                await EvalRun(_as_sent(runtime)).check(started)
        except EvalCheckFailed as exc:
            raise TaskAppError(422, "preflight_failed", str(exc)) from None
        except TimeoutError:
            if not deadline.expired():
                raise
            pending = started[-1] if started else "the first"
            message = (
                f"{pending} check did not answer within the {self.preflight_deadline_s:g} s "
                "this server gives the preflight"
            )
            raise TaskAppError(422, "preflight_failed", message) from None

    async def start(self, service: JobsService, job: dict[str, Any], runtime: EvalConfig) -> None:
        job_id, tenant = job["job_id"], job["tenant"]

        async def prepare() -> Run:
            results = service.artifacts.path(job_id, RESULTS_NAME)
            await asyncio.to_thread(results.parent.mkdir, parents=True, exist_ok=True)
            config = _as_sent(runtime)

            async def run(cancel: asyncio.Event) -> None:
                evaluation = EvalRun(
                    config,
                    emitter=JobEmitter(service, job_id),
                    cancel=cancel,
                    results_path=results,
                    results_url=service.artifacts.url(job_id, RESULTS_NAME),
                    results_kept=lambda: service.artifacts.record(job_id, RESULTS_NAME, tenant),
                    checked=True,  # `check` ran the preflight before the job was made
                )
                await evaluation.run()

            return run

        await self.runs.start(service, job_id, prepare)


def _as_sent(runtime: EvalConfig) -> EvalConfig:
    """The config the server's client uses: with "" and not None as the key, so the client
    never falls back to this server's own ENVIRONMENT_API_KEY."""
    return runtime.model_copy(update={"api_key": runtime.api_key or ""})
