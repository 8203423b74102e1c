"""The `prompt_learning` job kind: a jobs server runs an optimization itself, as it runs `eval`.

The server keeps the task app's key out of the stored job, serves the interceptor on loopback
for the run (on its own event loop, where the run sends its rollouts), keeps the run's state
beside the job's artifacts, and stops the run at its next batch when
`POST /api/jobs/{id}/cancel` arrives. A job may resume a stopped one (`resume_from`): it starts
from that job's stored state, spending none of its budget again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from pydantic import Field, field_validator

from synth_ai.jobs import JobEmitter, JobsService
from synth_ai.jobs.masking import mask_passwords
from synth_ai.jobs.server_runs import Run, ServerRuns
from synth_ai.task.errors import invalid_request

from .config import PromptLearningSection, Strict
from .interceptor import Interceptor
from .prompt import InitialPrompt
from .rollouts import Candidate
from .run import OptimizeRun, PreflightFailed
from .state import STATE_NAME, Keep, carry_over, read_state

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


def keeper(service: JobsService, job_id: str, tenant: str | None) -> Keep:
    """Records each artifact the run writes in the job's artifact index (with its rename, in
    one transaction), so a listing shows it and its bytes count against the job's and the
    tenant's bounds. Written by the server itself, it is never refused."""

    def keep(name: str, size: int, sha256: str, place: Callable[[], None]) -> None:
        service.artifacts.commit_written(job_id, name, tenant, size, sha256, place)

    return keep


async def open_folder(
    service: JobsService, job_id: str, job: PromptLearningJob, tenant: str | None
) -> dict[str, Any] | None:
    """Make the job's folder and, for a resumption, carry the stopped job's state into it (and
    into the index); answers that state. Raises when either cannot be done."""
    folder = job_folder(service, job_id)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    if not job.resume_from:
        return None
    await asyncio.to_thread(carry_over, job_folder(service, job.resume_from), folder)
    await service.artifacts.record(job_id, STATE_NAME, tenant)
    return await asyncio.to_thread(read_state, folder)


async def run_job(
    service: JobsService,
    job_id: str,
    job: PromptLearningJob,
    cancel: asyncio.Event,
    emitter: JobEmitter | None = None,
    artifact_url: Callable[[str], str] | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the optimization of job `job_id` (owned by `tenant`); answers its
    summary. Artifacts are named by their URL on the jobs server unless `artifact_url` says
    otherwise."""
    resumed = await open_folder(service, job_id, job, tenant)
    return await run_opened(service, job_id, job, cancel, resumed, emitter, artifact_url, tenant)


async def run_opened(
    service: JobsService,
    job_id: str,
    job: PromptLearningJob,
    cancel: asyncio.Event,
    resumed: dict[str, Any] | None,
    emitter: JobEmitter | None = None,
    artifact_url: Callable[[str], str] | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """`run_job` once `open_folder` answered `resumed`."""
    section = job.prompt_learning
    initial = section.initial_prompt.build()
    interceptor = Interceptor(initial, section.policy.inference_url, model=section.policy.model)
    async with interceptor:
        run = OptimizeRun(
            section,
            interceptor=interceptor,
            seed_candidate=initial.seed_candidate(),
            to_sections=sections_of(initial),
            folder=job_folder(service, job_id),
            emitter=emitter or JobEmitter(service, job_id),
            cancel=cancel,
            api_key=section.task_app_api_key or "",
            artifact_url=artifact_url or (lambda name: service.artifacts.url(job_id, name)),
            resumed=resumed,
            app_reference=job.app_reference,
            keep=keeper(service, job_id, tenant),
        )
        return await run.run()


def stored_config(job: PromptLearningJob) -> dict[str, Any]:
    """The config as the job log keeps it: without the app's key, URL passwords masked."""
    kept = job.model_dump(mode="json", exclude={"prompt_learning": {"task_app_api_key"}})
    return cast("dict[str, Any]", mask_passwords(kept))


class PromptLearningJobKind:
    """Validates prompt-learning configs and runs each job as a task on the server's loop
    (`ServerRuns`: a start that fails, such as a resumption with no state, ends the job
    `failed`)."""

    def __init__(self) -> None:
        self.runs = ServerRuns(KIND, logger, reported=(PreflightFailed,))

    def prepare(self, config: dict[str, Any]) -> tuple[dict[str, Any], PromptLearningJob]:
        runtime = PromptLearningJob.model_validate(config)
        return stored_config(runtime), runtime

    async def check(
        self, service: JobsService, runtime: PromptLearningJob, tenant: str | None
    ) -> None:
        """A resumption names a job its creator may see (the operator any): another tenant's
        state is never carried over, and the refusal is the same as for no job at all. (The
        preflight sends a rollout through the run's interceptor, so it runs inside the job,
        which it ends `failed` with `preflight`.)"""
        source = runtime.resume_from
        if source is None:
            return
        if tenant is None:
            known = await service.snapshot(source) is not None
        else:
            known = await asyncio.to_thread(service.log.owns, source, tenant)
        if not known:
            raise invalid_request(
                "No job of yours has the id given to resume from.",
                loc=["body", "config", "resume_from"],
                msg="unknown job",
                type="job_not_found",
            )

    async def start(
        self, service: JobsService, job: dict[str, Any], runtime: PromptLearningJob
    ) -> None:
        job_id, tenant = job["job_id"], job["tenant"]

        async def prepare() -> Run:
            resumed = await open_folder(service, job_id, runtime, tenant)

            async def run(cancel: asyncio.Event) -> None:
                await run_opened(service, job_id, runtime, cancel, resumed, tenant=tenant)

            return run

        await self.runs.start(service, job_id, prepare)
