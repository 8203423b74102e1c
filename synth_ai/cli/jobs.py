"""`synth-ai jobs ...`: serve the jobs API, and list, inspect, stream and watch jobs."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from synth_ai.jobs import JobEvent, JobState, JobsWatcher
from synth_ai.jobs.client import JobStreamError
from synth_ai.task import TaskAppClient, TaskAppClientError
from synth_ai.task.connections import DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_ENV

DEFAULT_URL = "http://127.0.0.1:8002"
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2


def exit_code(state: JobState | None) -> int:
    return EXIT_SUCCEEDED if state is JobState.SUCCEEDED else EXIT_FAILED


def server_options(command: Any) -> Any:
    command = click.option(
        "--url",
        default=lambda: os.environ.get("SYNTH_JOBS_URL", DEFAULT_URL),
        show_default="$SYNTH_JOBS_URL or " + DEFAULT_URL,
        help="The jobs server.",
    )(command)
    return click.option(
        "--api-key", default=None, help="Key for the server (default: $ENVIRONMENT_API_KEY)."
    )(command)


def compact_line(event: JobEvent) -> str:
    """One short line per event: `t=18:22:40 step=820 avg_reward=0.62`."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    data = event.data
    parts = [f"t={stamp}"]
    if data.get("step") is not None:
        parts.append(f"step={data['step']}")
    name = event.sse_name
    if name == "metric":
        value = data.get("value")
        shown = f"{value:.4g}" if isinstance(value, float) else value
        parts.append(f"{data.get('name') or event.type}={shown}")
        if data.get("split"):
            parts.append(f"split={data['split']}")
    elif name == "status":
        parts.append(f"state={data.get('state')}")
        if event.message:
            parts.append(event.message)
    elif name == "artifact":
        parts.append(f"artifact={data.get('kind')} {data.get('url')}")
    else:
        parts.append(f"[{event.level}] {event.message or json.dumps(data)}")
    return " ".join(parts)


async def _call(url: str, api_key: str | None, method: str, *args: Any) -> Any:
    async with TaskAppClient(url, api_key, max_retries=1) as client:
        return await getattr(client, method)(*args)


def _run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except (TaskAppClientError, JobStreamError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def jobs() -> None:
    """Job events: serve them, and follow jobs live."""


@jobs.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8002, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--db",
    "db_path",
    default="traces/jobs.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="A browser origin allowed to read streams (repeatable; none by default).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help=f"Open connections before requests get 503 (default: ${MAX_CONNECTIONS_ENV} or "
    f"{DEFAULT_MAX_CONNECTIONS}); each live stream holds one.",
)
def serve(
    host: str,
    port: int,
    db_path: Path,
    cors_origins: tuple[str, ...],
    max_connections: int | None,
) -> None:
    """Serve the jobs API and event streams; it also runs `eval` jobs itself."""
    from synth_ai.eval import EvalJobKind
    from synth_ai.jobs import create_jobs_app
    from synth_ai.task.serving import run_app

    app = create_jobs_app(db_path, kinds={"eval": EvalJobKind()}, cors_origins=cors_origins)
    run_app(app, host=host, port=port, max_connections=max_connections)


@jobs.command("list")
@server_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def list_jobs(url: str, api_key: str | None, limit: int) -> None:
    """List jobs, newest first."""

    async def fetch() -> Any:
        async with TaskAppClient(url, api_key, max_retries=1) as client:
            return await client.request("GET", "/api/jobs", params={"limit": limit})

    table = Table(title="jobs")
    for column in ("job_id", "kind", "state", "last_seq", "created"):
        table.add_column(column)
    for job in _run(fetch())["jobs"]:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["created_at"]))
        table.add_row(job["job_id"], job["kind"], job["state"], str(job["last_seq"]), created)
    Console().print(table)


@jobs.command("status")
@click.argument("job_id")
@server_options
def status(job_id: str, url: str, api_key: str | None) -> None:
    """Print a job's snapshot as JSON."""
    click.echo(json.dumps(_run(_call(url, api_key, "status", job_id)), indent=2))


@jobs.command("stream")
@click.argument("job_id")
@server_options
@click.option("--types", default=None, help="Comma-separated: status,metric,log,artifact.")
@click.option(
    "--jsonl",
    "jsonl_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also append every event to this JSONL file.",
)
@click.option("--since-id", default=None, type=click.IntRange(0), help="Resume after this id.")
@click.option("--timeout", "timeout_s", default=None, type=float, help="Give up after seconds.")
def stream(
    job_id: str,
    url: str,
    api_key: str | None,
    types: str | None,
    jsonl_path: Path | None,
    since_id: int | None,
    timeout_s: float | None,
) -> None:
    """Print a job's events as compact lines until it ends. Exit 0 succeeded, 1 failed or
    canceled, 2 timeout."""
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None

    async def follow() -> JobState | None:
        async with TaskAppClient(url, api_key) as client:
            watcher = JobsWatcher(
                client,
                job_id,
                types=wanted,
                jsonl_path=jsonl_path,
                timeout_s=timeout_s,
                on_event=lambda e: click.echo(compact_line(e)),
                stream_options={"since_id": since_id},
            )
            return await watcher.run()

    try:
        state = _run(follow())
    except TimeoutError:
        click.echo(f"timed out after {timeout_s:g} s", err=True)
        raise SystemExit(EXIT_TIMEOUT) from None
    raise SystemExit(exit_code(state))


def _view(watcher: JobsWatcher) -> Group:
    header = Text.assemble(
        ("job ", "bold"),
        watcher.job_id,
        "  state ",
        (str(watcher.state or "?"), "bold cyan"),
        f"  step {watcher.step if watcher.step is not None else '-'}",
        f"  events {watcher.last_seq}",
    )
    metrics = Table(box=None, show_header=True, header_style="bold")
    for column in ("metric", "last", "mean", "min", "max"):
        metrics.add_column(column, justify="right" if column != "metric" else "left")
    for name, window in sorted(watcher.metrics.items()):
        s = window.summary()
        metrics.add_row(
            name,
            *(f"{s[k]:.4g}" if s[k] is not None else "-" for k in ("last", "mean", "min", "max")),
        )
    logs = Text("\n".join(watcher.logs) or "(no logs yet)", style="dim")
    return Group(header, metrics, logs)


@jobs.command("watch")
@click.argument("job_id")
@server_options
@click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=float,
    help="Seconds between screen refreshes (and polls with --no-sse).",
)
@click.option("--no-sse", is_flag=True, help="Poll the events route instead of streaming.")
@click.option("--quiet", is_flag=True, help="Print only the final state.")
@click.option("--per-event", is_flag=True, help="Print each event instead of a live view.")
@click.option("--timeout", "timeout_s", default=None, type=float, help="Give up after seconds.")
def watch(
    job_id: str,
    url: str,
    api_key: str | None,
    interval: float,
    no_sse: bool,
    quiet: bool,
    per_event: bool,
    timeout_s: float | None,
) -> None:
    """A live view of a job: state, step, key metrics, recent logs."""
    console = Console()

    async def follow() -> JobState | None:
        async with TaskAppClient(url, api_key) as client:
            options = {"poll_only": True, "poll_interval_s": interval} if no_sse else {}
            watcher = JobsWatcher(
                client,
                job_id,
                stream_options=options,
                timeout_s=timeout_s,
                on_event=(lambda e: console.print(compact_line(e)))
                if per_event and not quiet
                else None,
            )
            if quiet or per_event:
                return await watcher.run()
            with Live(
                _view(watcher), console=console, refresh_per_second=max(1, int(1 / interval))
            ) as live:
                watcher.hooks["event"] = lambda e: live.update(_view(watcher))
                return await watcher.run()

    try:
        state = _run(follow())
    except TimeoutError:
        console.print(f"timed out after {timeout_s:g} s")
        raise SystemExit(EXIT_TIMEOUT) from None
    console.print(f"job {job_id} {state.value if state else 'unknown'}")
    raise SystemExit(exit_code(state))
