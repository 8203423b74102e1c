"""`synth-ai optimize CONFIG.toml` (alias `synth-ai train --type prompt_learning --config ...`):
improve a prompt against a task app with GEPA, as a `prompt_learning` job.

Exit codes: 0 finished, 1 the best test score is under `--fail-under` (or the job failed),
2 a bad config, 3 the app or the policy unreachable or refusing at preflight, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from synth_ai.client import TaskAppClient, TaskAppClientError
from synth_ai.jobs import JobEmitter, JobsService, JobState
from synth_ai.optimize.config import ConfigError, load_config, parse_config
from synth_ai.optimize.job_kind import KIND, PromptLearningJob, run_job, stored_config
from synth_ai.optimize.run import PreflightFailed
from synth_ai.optimize.state import STATE_NAME, read_state, write_json

from .app_target import serve_target
from .optimize_report import LiveView, json_report, print_summary, progress_bar

INTERRUPTED, UNREACHABLE, BAD_CONFIG = 130, 3, 2
View = Callable[[str, dict[str, Any]], None]


class BadConfig(click.ClickException):
    exit_code = BAD_CONFIG


class TeeEmitter(JobEmitter):
    """The job's emitter, also showing each event live in this terminal."""

    def __init__(self, service: JobsService, job_id: str, view: View) -> None:
        super().__init__(service, job_id)
        self.view = view

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.view(type, data or {})
        super().emit(type, message=message, level=level, data=data)


async def run_local(
    job: PromptLearningJob, stored: dict[str, Any], jobs_db: Path, console: Console
) -> tuple[str, dict[str, Any], bool]:
    """Run in this process; answers (job id, summary, interrupted)."""
    service = JobsService(jobs_db)
    try:
        created = await service.create(KIND, stored, {}, run_here=True)
        job_id = created["job_id"]
        cancel = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, cancel.set)
        console.print(f"job {job_id} (events in {jobs_db})")
        try:
            with progress_bar(console) as progress:
                view = LiveView(progress, job.prompt_learning.gepa.rollout.budget)
                emitter = TeeEmitter(service, job_id, view)
                summary = await run_job(
                    service,
                    job_id,
                    job,
                    cancel,
                    emitter,
                    artifact_url=lambda name: str(service.artifacts.path(job_id, name)),
                )
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        return job_id, summary, cancel.is_set()
    finally:
        await service.close()


async def run_remote(
    job: PromptLearningJob, jobs_url: str, api_key: str | None, console: Console
) -> tuple[str, dict[str, Any] | None, bool]:
    """Run on a jobs server and follow it over SSE; Ctrl-C cancels the job there."""
    async with TaskAppClient(jobs_url, api_key) as client:
        created = await client.create_job(KIND, job.model_dump(mode="json"))
        job_id = created["job_id"]
        canceling: set[asyncio.Future[Any]] = set()

        def cancel() -> None:
            if not canceling:
                console.print(f"canceling job {job_id}...")
                canceling.add(asyncio.ensure_future(client.cancel_job(job_id)))

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, cancel)
        console.print(f"job {job_id} on {jobs_url}")
        summary = None
        try:
            with progress_bar(console) as progress:
                view = LiveView(progress, job.prompt_learning.gepa.rollout.budget)
                async for event in client.stream_job(job_id):
                    view(event.type, event.data)
                    if event.state is not None and event.state.terminal:
                        summary = event.data.get("summary")
                        if event.state is JobState.FAILED:
                            message = event.data.get("message") or "job failed"
                            if event.data.get("preflight"):
                                raise PreflightFailed(message)
                            raise click.ClickException(message)
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        return job_id, summary, bool(canceling)


def _stored_state(resume: str, jobs_db: Path) -> dict[str, Any]:
    folder = jobs_db.with_suffix(".artifacts") / resume
    try:
        return read_state(folder)
    except (OSError, ValueError) as exc:
        raise BadConfig(f"--resume {resume}: no run state in {folder} ({exc})") from None


async def _remote_state(resume: str, jobs_url: str, api_key: str | None, into: Path) -> None:
    async with TaskAppClient(jobs_url, api_key) as client:
        await client.download_artifact(resume, STATE_NAME, into / STATE_NAME)


def optimize_main(
    config_path: Path | None,
    resume: str | None,
    jobs_url: str | None,
    jobs_api_key: str | None,
    jobs_db: Path,
    as_json: bool,
    fail_under: float | None,
) -> None:
    console = Console(stderr=as_json)  # with --json, stdout holds the JSON document alone
    logging.getLogger("synth_ai.task.access").setLevel(logging.WARNING)
    if (config_path is None) == (resume is None):
        raise click.UsageError("give CONFIG.toml, or --resume JOB_ID")
    app_reference = None
    try:
        if resume is not None:
            if jobs_url:
                with tempfile.TemporaryDirectory() as scratch:
                    asyncio.run(_remote_state(resume, jobs_url, jobs_api_key, Path(scratch)))
                    state = read_state(Path(scratch))
            else:
                state = _stored_state(resume, jobs_db)
            if state.get("finished"):
                raise ConfigError(f"--resume {resume}: that run finished; nothing to resume")
            config = parse_config({"prompt_learning": state["config"]})
            app_reference = state.get("app_reference")
        else:
            assert config_path is not None
            config = load_config(config_path)
        section = config.prompt_learning
    except (ConfigError, ValueError) as exc:
        raise BadConfig(str(exc)) from None
    except TaskAppClientError as exc:  # the jobs server does not know the job, or is down
        raise BadConfig(f"--resume {resume}: {exc}") from None
    with contextlib.ExitStack() as stack:
        target = app_reference or section.task_app_url
        url = serve_target(stack, target)
        key = section.task_app_api_key or os.environ.get("ENVIRONMENT_API_KEY")
        section = section.model_copy(update={"task_app_url": url, "task_app_api_key": key})
        job = PromptLearningJob(
            prompt_learning=section,
            app_reference=None if url == target else target,
            resume_from=resume,
        )
        stored = stored_config(job)
        try:
            if jobs_url:
                job_id, summary, interrupted = asyncio.run(
                    run_remote(job, jobs_url, jobs_api_key, console)
                )
            else:
                job_id, summary, interrupted = asyncio.run(run_local(job, stored, jobs_db, console))
        except PreflightFailed as exc:
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(UNREACHABLE) from None
        except TaskAppClientError as exc:  # the jobs server refused the job, or is down
            raise click.ClickException(f"jobs server {jobs_url}: {exc}") from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise SystemExit(INTERRUPTED) from None
    if summary is None:
        click.echo(f"job {job_id} stopped; its best so far is in its best_prompt.json", err=True)
        raise SystemExit(INTERRUPTED if interrupted else 1)
    print_summary(console, summary, job_id)
    if section.results_folder:
        folder = Path(section.results_folder)
        write_json(folder / f"{job_id}.json", json_report(summary, job_id))
    if as_json:
        click.echo(json.dumps(json_report(summary, job_id)))
    if interrupted or summary.get("canceled"):  # Ctrl-C here, or a cancel through the API
        raise SystemExit(INTERRUPTED)
    best_test = (summary.get("best_score") or {}).get("test")
    if fail_under is not None and (best_test is None or best_test < fail_under):
        click.echo(f"optimize: best test score {best_test} is under {fail_under}", err=True)
        raise SystemExit(1)


def shared_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--resume", default=None, metavar="JOB_ID", help="Continue a stopped job."),
        click.option(
            "--jobs-url", default=None, help="Run on this `synth-ai jobs serve` and follow it."
        ),
        click.option(
            "--jobs-api-key",
            default=None,
            envvar="SYNTH_JOBS_API_KEY",
            help="Key of the jobs server (default: $SYNTH_JOBS_API_KEY, else the task app's).",
        ),
        click.option(
            "--jobs-db",
            default="traces/jobs.db",
            show_default=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Job log for local runs (artifacts beside it).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout."),
        click.option(
            "--fail-under", type=float, default=None, help="Exit 1 when best test score < X."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("optimize")
@click.argument(
    "config_path",
    metavar="CONFIG.toml",
    required=False,
    type=click.Path(dir_okay=False, path_type=Path),
)
@shared_options
def optimize(config_path: Path | None, **options: Any) -> None:
    """Improve a prompt against a task app with GEPA (the published prompt-learning TOML)."""
    optimize_main(config_path, **options)


@click.command("train")
@click.option(
    "--type", "kind", type=click.Choice(["prompt_learning"]), required=True, help="Job type."
)
@click.option(
    "--config",
    "config_path",
    required=False,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The prompt-learning TOML.",
)
@shared_options
def train(kind: str, config_path: Path | None, **options: Any) -> None:
    """Published alias: `train --type prompt_learning --config CONFIG.toml` is `optimize`."""
    optimize_main(config_path, **options)
