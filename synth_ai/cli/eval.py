"""`synth-ai eval APP_OR_URL --seeds 0-49`: evaluate a policy on a task app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from synth_ai.client import TaskAppClient, TaskAppClientError
from synth_ai.eval import EvalCheckFailed, EvalConfig, EvalRun, EvalSummary, parse_seeds, verdict
from synth_ai.eval.job_kind import RESULTS_NAME
from synth_ai.eval.verdict import INTERRUPTED, UNREACHABLE
from synth_ai.jobs import JobEmitter, JobsService, JobState
from synth_ai.jobs.upload import file_chunks
from synth_ai.offline_policy import OFFLINE_MODEL, create_offline_policy_app
from synth_ai.task import serve_in_background

from .app_target import POLICY_SCRIPT_HELP, serve_policy_script, serve_target
from .eval_report import print_summary, progress_bar, report


def _json_option(value: str | None, name: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=name) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return parsed


async def run_local(
    config: EvalConfig, jobs_db: Path, out_path: Path, console: Console
) -> tuple[str, EvalSummary]:
    """Run in this process; events go to the job log at `jobs_db`, results to `out_path`."""
    cancel = asyncio.Event()
    run = EvalRun(config, cancel=cancel, results_path=out_path)
    await run.check()  # a run that cannot start makes no job
    service = JobsService(jobs_db)
    try:
        job = await service.create(
            "eval", config.model_dump(exclude={"api_key"}), {}, run_here=True
        )
        job_id = job["job_id"]
        run.emitter = JobEmitter(service, job_id)
        # the results go to the job too, so `jobs serve` on this log shows them with it
        run.results_url = service.artifacts.url(job_id, RESULTS_NAME)
        # the server's own file: never refused for its size once every rollout has run
        run.results_kept = lambda: service.artifacts.save(
            job_id, RESULTS_NAME, None, file_chunks(out_path), bounded=False
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, cancel.set)
        console.print(f"job {job['job_id']} (events in {jobs_db})")
        with progress_bar(console) as progress:
            task = progress.add_task("eval", total=len(config.seeds), mean="-")

            def advance(_: Any) -> None:
                scored = [
                    r.reward for r in run.results if r.status == "ok" and r.reward is not None
                ]
                mean = f"{sum(scored) / len(scored):.3f}" if scored else "-"
                progress.update(task, advance=1, mean=mean)

            run.on_result = advance
            summary = await run.run()
        loop.remove_signal_handler(signal.SIGINT)
        return job["job_id"], summary
    finally:
        await service.close()


async def run_remote(
    config: EvalConfig, jobs_server: str, api_key: str | None, out_path: Path, console: Console
) -> tuple[str, EvalSummary | None]:
    """Run on a jobs server, follow it over SSE, then fetch its results to `out_path`."""
    async with TaskAppClient(jobs_server, api_key) as client:
        try:
            job = await client.create_job("eval", config.model_dump())
        except TaskAppClientError as exc:
            if exc.code == "preflight_failed":  # the server made no job
                raise EvalCheckFailed(exc.message) from None
            raise
        job_id = job["job_id"]
        summary = None
        canceling: set[asyncio.Task[Any]] = set()

        def cancel() -> None:  # Ctrl-C: the job ends `canceled`, then the stream ends
            if not canceling:
                console.print(f"canceling job {job_id}...")
                canceling.add(asyncio.ensure_future(client.cancel_job(job_id)))

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, cancel)
        console.print(f"job {job_id} on {jobs_server}")
        with contextlib.ExitStack() as restore, progress_bar(console) as progress:
            restore.callback(loop.remove_signal_handler, signal.SIGINT)
            task = progress.add_task("eval", total=len(config.seeds), mean="-")
            async for event in client.stream_job(job_id):
                name = event.data.get("name")
                if event.type == "eval.result":
                    progress.update(task, completed=event.data.get("step", 0))
                elif event.type == "eval.metric" and name == "mean_reward":
                    progress.update(task, mean=f"{event.data['value']:.3f}")
                elif event.sse_name == "log":
                    progress.console.print(f"[yellow]{event.message}[/yellow]")
                elif event.state is not None and event.state.terminal:
                    if event.data.get("summary"):
                        summary = EvalSummary.model_validate(event.data["summary"])
                    elif event.state is JobState.FAILED:
                        message = event.data.get("message") or "job failed"
                        if event.data.get("preflight"):
                            raise EvalCheckFailed(message)
                        raise click.ClickException(message)
        names = {artifact["name"] for artifact in await client.artifacts(job_id)}
        if RESULTS_NAME in names:
            await client.download_artifact(job_id, RESULTS_NAME, out_path)
        return job_id, summary


@click.command("eval")
@click.argument("target", metavar="APP_OR_URL")
@click.option("--seeds", "seed_spec", default="0-9", show_default=True, help="e.g. 0-49 or 1,5,9")
@click.option("--split", default=None, help="Dataset split, passed as env.config.split.")
@click.option("--model", default=None, help="policy.config.model")
@click.option("--inference-url", default=None, help="OpenAI-compatible endpoint of the policy.")
@click.option(
    "--offline-policy",
    is_flag=True,
    help="Start the offline stand-in policy (no LLM vendor) and use it.",
)
@click.option(
    "--policy-script",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=POLICY_SCRIPT_HELP,
)
@click.option("--policy-config", default=None, help="Extra policy.config as a JSON object.")
@click.option(
    "--prompt-template",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON file: {system, user} sections with {problem}.",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 1024))
@click.option(
    "--timeout",
    "timeout_s",
    default=120.0,
    show_default=True,
    type=float,
    help="Seconds per rollout request.",
)
@click.option("--max-retries", default=3, show_default=True, type=click.IntRange(0, 20))
@click.option("--api-key", default=None, help="Task app key (default: $ENVIRONMENT_API_KEY).")
@click.option(
    "--out",
    "out_path",
    default="eval_results.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--include-infra-errors", is_flag=True, help="Count infrastructure errors in the mean."
)
@click.option(
    "--exclude-errors",
    is_flag=True,
    help="Leave task errors (seeds the app failed) out of the mean; by default they count as 0.",
)
@click.option(
    "--fail-under",
    type=float,
    default=None,
    help="Exit 1 when the mean reward is below this.",
)
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Exit 1 when more than this share of seeds failed (task or infrastructure errors).",
)
@click.option(
    "--success-threshold",
    type=float,
    default=0.0,
    show_default=True,
    help="A seed succeeds when its reward is above this (unless the app reports "
    "details.success or details.correct).",
)
@click.option(
    "--jobs-server", default=None, help="Run on this `synth-ai jobs serve` and follow it."
)
@click.option(
    "--jobs-db",
    default="traces/jobs.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Job log for local runs.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the report as one JSON document on stdout; progress and the table go to stderr.",
)
def eval_command(
    target: str,
    seed_spec: str,
    split: str | None,
    model: str | None,
    inference_url: str | None,
    offline_policy: bool,
    policy_script: Path | None,
    policy_config: str | None,
    prompt_template: Path | None,
    concurrency: int,
    timeout_s: float,
    max_retries: int,
    api_key: str | None,
    out_path: Path,
    include_infra_errors: bool,
    exclude_errors: bool,
    fail_under: float | None,
    max_error_rate: float,
    success_threshold: float,
    jobs_server: str | None,
    jobs_db: Path,
    as_json: bool,
) -> None:
    """Roll out SEEDS on a task app (a URL, or a registered app served in-process).

    Exit codes: 0 passed, 1 a threshold failed (--max-error-rate, --fail-under), 2 usage,
    3 the app or the policy cannot be reached at preflight, 130 interrupted (Ctrl-C).
    """
    console = Console(stderr=as_json)  # with --json, stdout holds the JSON document alone
    logging.getLogger("synth_ai.task.access").setLevel(logging.WARNING)
    try:
        seeds = parse_seeds(seed_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from None
    template = None
    if prompt_template is not None:
        try:
            template = json.loads(prompt_template.read_text())
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--prompt-template") from None
    with contextlib.ExitStack() as stack:
        if policy_script is not None:
            inference_url = serve_policy_script(stack, policy_script)
        elif offline_policy:
            inference_url = stack.enter_context(serve_in_background(create_offline_policy_app()))
            model = model or OFFLINE_MODEL
        url = serve_target(stack, target)
        config = EvalConfig(
            task_app_url=url,
            api_key=api_key or os.environ.get("ENVIRONMENT_API_KEY"),
            seeds=seeds,
            split=split,
            model=model,
            inference_url=inference_url,
            policy_config=_json_option(policy_config, "--policy-config"),
            prompt_template=template,
            concurrency=concurrency,
            timeout_s=timeout_s,
            max_retries=max_retries,
            include_infra_errors_in_mean=include_infra_errors,
            exclude_errors_from_mean=exclude_errors,
            fail_under=fail_under,
            max_error_rate=max_error_rate,
            success_threshold=success_threshold,
        )
        started = time.time()
        try:
            if jobs_server:
                job_id, summary = asyncio.run(
                    run_remote(config, jobs_server, api_key, out_path, console)
                )
            else:
                job_id, summary = asyncio.run(run_local(config, jobs_db, out_path, console))
        except EvalCheckFailed as exc:
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(UNREACHABLE) from None
        except KeyboardInterrupt:  # before the run could install its own handler
            click.echo("Interrupted.", err=True)
            raise SystemExit(INTERRUPTED) from None
    if summary is None:
        raise click.ClickException(f"job {job_id} ended without a summary")
    finished = time.time()
    print_summary(console, summary, job_id, str(out_path), (started, finished))
    outcome = verdict(summary, fail_under=fail_under, max_error_rate=max_error_rate)
    if as_json:
        document = report(summary, job_id, str(out_path), (started, finished))
        click.echo(json.dumps({**document, "exit_code": outcome.code, "verdict": outcome.reason}))
    if outcome.code:
        click.echo(f"eval: {outcome.reason}", err=True)
    raise SystemExit(outcome.code)
