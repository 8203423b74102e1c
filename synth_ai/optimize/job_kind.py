"""The `prompt_learning` job kind: a jobs server runs an optimization itself, as it runs `eval`.

The server keeps the task app's key out of the stored job, serves the interceptor on loopback
for the run, keeps the run's state beside the job's artifacts, and stops the run at its next
batch when `POST /api/jobs/{id}/cancel` arrives. A job may resume a stopped one
(`resume_from`): it starts from that job's stored state, spending none of its budget again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from synth_ai.jobs import JobEmitter, JobsService, JobState

from .config import PromptLearningSection, Strict
from .interceptor import Interceptor
from .prompt import InitialPrompt
from .rollouts import Candidate
from .run import OptimizeRun, PreflightFailed
from .state import STATE_NAME, carry_over, read_state

logger = logging.getLogger("synth_ai.optimize")
KIND = "prompt_learning"


class PromptLearningJob(Strict):
    """A job's config: the `[prompt_learning]` table with the app as a URL."""

    prompt_learning: PromptLearningSection
    app_reference: str | None = Field(default=None, max_length=2048)
    """What the user named the app by, when the CLI served it in-process (for `--resume`)."""
    resume_from: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @field_validator("prompt_learning")
    @classmethod
    def _url(cls, section: PromptLearningSection) -> PromptLearningSection:
        if not section.task_app_url.startswith(("http://", "https://")):
            raise ValueError("task_app_url must be an http(s) URL on a jobs server")
        return section


def sections_of(initial: InitialPrompt) -> Callable[[Candidate], list[dict[str, str]]]:
    """A candidate as the published `sections` ([{role, content}], in the prompt's order)."""
    names = initial.component_names()

    def sections(candidate: Candidate) -> list[dict[str, str]]:
        return [
            {"role": message.role, "content": candidate.get(name, message.pattern)}
            for name, message in zip(names, initial.messages, strict=True)
        ]

    return sections


def job_folder(service: JobsService, job_id: str) -> Path:
    return service.artifacts.path(job_id, STATE_NAME).parent


async def run_job(
    service: JobsService,
    job_id: str,
    job: PromptLearningJob,
    cancel: asyncio.Event,
    emitter: JobEmitter | None = None,
    artifact_url: Callable[[str], str] | None = None,
    stored: Callable[[list[str]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the optimization of job `job_id`; answers its summary. Artifacts are
    named by their URL on the jobs server unless `artifact_url` says otherwise."""
    section = job.prompt_learning
    folder = job_folder(service, job_id)
    resumed = None
    if job.resume_from:
        source = job_folder(service, job.resume_from)
        await asyncio.to_thread(carry_over, source, folder)
        resumed = await asyncio.to_thread(read_state, folder)
    initial = section.initial_prompt.build()
    interceptor = Interceptor(initial, section.policy.inference_url, model=section.policy.model)
    async with interceptor:
        run = OptimizeRun(
            section,
            interceptor=interceptor,
            seed_candidate=initial.seed_candidate(),
            to_sections=sections_of(initial),
            folder=folder,
            emitter=emitter or JobEmitter(service, job_id),
            cancel=cancel,
            api_key=section.task_app_api_key or "",
            artifact_url=artifact_url or (lambda name: service.artifacts.url(job_id, name)),
            resumed=resumed,
            app_reference=job.app_reference,
            stored=stored,
        )
        return await run.run()


class PromptLearningJobKind:
    """Validates prompt-learning configs and runs each job as a task on the server's loop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def prepare(self, config: dict[str, Any]) -> tuple[dict[str, Any], PromptLearningJob]:
        runtime = PromptLearningJob.model_validate(config)
        stored = runtime.model_dump(mode="json", exclude={"prompt_learning": {"task_app_api_key"}})
        return stored, runtime

    async def start(
        self, service: JobsService, job: dict[str, Any], runtime: PromptLearningJob
    ) -> None:
        job_id = job["job_id"]
        bus = await service.bus(job_id)
        assert bus is not None
        cancel = asyncio.Event()
        statuses = bus.subscribe(["status"])

        async def watch_for_cancel() -> None:
            try:
                while not bus.state.terminal:
                    await statuses.wait(3600)
                    statuses.drain()
                if bus.state is JobState.CANCELED:
                    cancel.set()
            finally:
                bus.unsubscribe(statuses)

        async def index(names: list[str]) -> None:
            """The run's files in the server's artifact index, so the job lists them."""
            for name in names:
                try:
                    await service.artifacts.record(job_id, name, job.get("tenant"))
                except Exception:
                    logger.exception("prompt_learning job %s: cannot index %s", job_id, name)

        async def run() -> None:
            watcher = asyncio.create_task(watch_for_cancel())
            try:
                await run_job(service, job_id, runtime, cancel, stored=index)
            except PreflightFailed as exc:
                logger.warning("prompt_learning job %s: %s", job_id, exc)
            except Exception:
                logger.exception("prompt_learning job %s failed", job_id)
            finally:
                watcher.cancel()
                service.leases.forget(job_id)

        task = asyncio.create_task(run(), name=f"{KIND}-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
