"""`synth-ai demo`: the one-command tour. No keys, no network.

It serves the offline policy (a stand-in for an LLM vendor), the math task app with tracing
on, a jobs server and a trace viewer, all on free loopback ports, and prints the dashboard's
sign-in link first; runs an eval job over 50 seeds on the jobs server, followed live over SSE;
then a short prompt optimization of the math app against the offline stand-ins, on the same
dashboard; prints the summaries and where everything went, the optimization's seed vs best
table last. Its traces go to the default store (`traces/v3/synth_ai.db`), where `synth-ai
traces` looks. `--optimize-only` runs only the optimization.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import click
from rich.console import Console

from synth_ai.eval import EvalConfig, EvalJobKind, read_results
from synth_ai.jobs import create_jobs_app
from synth_ai.offline_policy import OFFLINE_MODEL, create_offline_policy_app
from synth_ai.optimize.job_kind import KIND, PromptLearningJobKind
from synth_ai.task import create_task_app, get_task_app, serve_in_background
from synth_ai.tracing_v3.settings import DEFAULT_DB_PATH
from synth_ai.ui import create_traces_app, sign_in_banner

from .demo_optimize import demo_job, print_optimization, run_optimization
from .eval import run_remote
from .eval_report import print_summary

OPENAI_URL = "https://api.openai.com/v1"


@click.command()
@click.option("--seeds", "count", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--error-rate",
    default=0.15,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="How often the offline policy answers wrongly (seeded, deterministic).",
)
@click.option(
    "--model",
    default=None,
    help="With OPENAI_API_KEY set: use this real model instead of the offline policy.",
)
@click.option(
    "--pace",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 60),
    help="Seconds the offline policy takes per answer, so the run can be watched live.",
)
@click.option(
    "--budget",
    default=120,
    show_default=True,
    type=click.IntRange(10, 10_000),
    help="Rollouts the optimization's search may spend (at the default pace, about a minute).",
)
@click.option(
    "--optimize-only", is_flag=True, help="Skip the eval: run only the prompt optimization."
)
@click.option(
    "--keep-serving",
    is_flag=True,
    help="Keep the servers (and the dashboard) up after the eval, until Ctrl-C.",
)
@click.option(
    "--dir",
    "out_dir",
    default=str(DEFAULT_DB_PATH.parent),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Where traces ({DEFAULT_DB_PATH.name}), SFT examples, results and the job log go.",
)
def demo(
    count: int,
    concurrency: int,
    error_rate: float,
    model: str | None,
    pace: float,
    budget: int,
    optimize_only: bool,
    keep_serving: bool,
    out_dir: Path,
) -> None:
    """Serve the math app, a policy and a jobs server on loopback; evaluate 50 seeds live,
    then optimize the app's prompt."""
    console = Console(soft_wrap=True)  # paths and commands stay whole, to copy and paste
    for name in ("synth_ai.task.access", "synth_ai.jobs", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    out_dir.mkdir(parents=True, exist_ok=True)
    made_key = not os.environ.get("ENVIRONMENT_API_KEY")
    api_key = os.environ.get("ENVIRONMENT_API_KEY") or secrets.token_urlsafe(24)
    os.environ["ENVIRONMENT_API_KEY"] = api_key  # this process only: the servers read it
    real_model = bool(model and os.environ.get("OPENAI_API_KEY"))
    trace_db = out_dir / DEFAULT_DB_PATH.name
    results = out_dir / "results.jsonl"
    sft = out_dir / "sft_examples.jsonl"
    earlier = _count_lines(sft)  # the directory is shared (serve --trace writes there too)
    config = get_task_app("math").config_factory()
    config.tracing, config.trace_db, config.sft_output_dir = True, trace_db, out_dir
    job_id = summary = None
    with contextlib.ExitStack() as stack:
        jobs_app = create_jobs_app(
            out_dir / "jobs.db", kinds={"eval": EvalJobKind(), KIND: PromptLearningJobKind()}
        )
        jobs_url = stack.enter_context(serve_in_background(jobs_app))
        console.print(f"jobs server at {jobs_url}")
        where = urlsplit(jobs_url)
        assert where.hostname is not None and where.port is not None
        watch = "Watch it" if keep_serving else "Watch it live (it stops with the run)"
        console.print(sign_in_banner(jobs_app.state.signin, where.hostname, where.port, watch))
        viewer = create_traces_app(trace_db)
        viewer_url = stack.enter_context(serve_in_background(viewer))
        seen = urlsplit(viewer_url)
        assert seen.hostname is not None and seen.port is not None
        console.print(sign_in_banner(viewer.state.signin, seen.hostname, seen.port, "Transcripts"))
        if not optimize_only:
            app_url = stack.enter_context(serve_in_background(create_task_app(config)))
            console.print(f"math task app (tracing on) at {app_url}")
            if real_model:
                inference_url = OPENAI_URL
                console.print(f"policy: {model} at {OPENAI_URL}")
            else:
                model = OFFLINE_MODEL
                policy = create_offline_policy_app(error_rate=error_rate, latency_s=pace)
                inference_url = stack.enter_context(serve_in_background(policy))
                console.print(f"policy: offline stand-in for an LLM at {inference_url}")
            eval_config = EvalConfig(
                task_app_url=app_url,
                api_key=api_key,
                seeds=list(range(count)),
                model=model,
                inference_url=inference_url,
                concurrency=concurrency,
            )
            started = time.time()
            job_id, summary = asyncio.run(
                run_remote(eval_config, jobs_url, api_key, results, console)
            )
            span = (started, time.time())
        # its own app: the same traces (each under its candidate), but no SFT examples, which
        # stay the eval's
        optimized = get_task_app("math").config_factory()
        optimized.tracing, optimized.trace_db = True, trace_db
        target = stack.enter_context(serve_in_background(create_task_app(optimized)))
        stand_ins = create_offline_policy_app(latency_s=pace)
        stand_ins_url = stack.enter_context(serve_in_background(stand_ins))
        console.print(
            f"prompt optimization of the math app at {target}: offline stand-ins for the policy"
            f" and the reflection model at {stand_ins_url}"
        )
        optimization = asyncio.run(
            run_optimization(
                demo_job(target, stand_ins_url, api_key, budget),
                jobs_url,
                api_key,
                console,
                {"trace_viewer_url": viewer_url},
            )
        )
        if keep_serving:
            console.print("serving until Ctrl-C (the dashboard keeps the finished jobs)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    # the servers have stopped: the trace writer has flushed everything
    command = cli_command()
    if not keep_serving:
        console.print(
            "the dashboard stopped with the run (its link is dead now): `jobs serve` below shows "
            "the jobs again with a new link, or run the demo with --keep-serving"
        )
    if not optimize_only:
        if summary is None or job_id is None:
            raise click.ClickException(f"job {job_id} ended without a summary")
        print_summary(console, summary, job_id, str(results), span)
        lines = _count_lines(sft) - earlier
        console.print(f"trace DB: {trace_db} ({len(read_results(results))} results)")
        console.print(f"SFT examples: {sft} ({lines} lines from this run)")
    console.print("next (each line works pasted as it is):")
    if made_key:  # the servers are gone; this throwaway key opens only what comes next
        console.print(f"  export ENVIRONMENT_API_KEY={api_key}   # the demo's throwaway key")
    console.print(f"  {command} jobs serve --db {out_dir / 'jobs.db'} &")
    if job_id is not None:
        console.print(f"  {command} jobs stream {job_id} --retry-for 10")
    console.print(f"  {command} traces list --db {trace_db}")
    console.print(f"  {command} traces export-sft sft.jsonl --min-reward 1 --db {trace_db}")
    print_optimization(console, *optimization)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def cli_command() -> str:
    """How to run this CLI from the user's shell: `synth-ai` when that is on PATH and is this
    install, else this install's script (`make demo` runs it from .venv without activating)."""
    script = Path(sys.executable).with_name("synth-ai")
    found = shutil.which("synth-ai")
    if found and Path(found).resolve() == script.resolve():
        return "synth-ai"
    if script.exists():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return f"{sys.executable} -m synth_ai"
