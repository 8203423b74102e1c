"""`synth-ai jobs ...`: serve the jobs API, and list, inspect, stream and watch jobs."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from synth_ai.client import JobsWatcher, TaskAppClient, TaskAppClientError
from synth_ai.client.job_stream import JobStreamError, is_transient
from synth_ai.client.task_app import request_within
from synth_ai.jobs import JobEvent, JobState

from .jobs_serve import serve
from .jobs_view import compact_line, job_record, live_view, print_summary, status_lines

DEFAULT_URL = "http://127.0.0.1:8002"
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2
EXIT_UNREACHABLE = 3  # down, wrong URL, not a jobs server, or unavailable past --retry-for
EXIT_UNAUTHORISED = 4  # 401: the API key is wrong or missing
EXIT_FORBIDDEN = 5  # 403
EXIT_NOT_FOUND = 6  # 404: no such job (or another tenant's)
EXIT_NO_SERVER_KEY = 7  # 503 missing_environment_api_key: the server has no key configured
EXIT_SERVER_ERROR = 8  # any other error the server answered

EXIT_CODES_HELP = """\b
Exit codes:
  0  the job succeeded (list, status: the command worked)
  1  the job failed or was canceled
  2  --timeout reached
  3  cannot reach a jobs server at --url (down, wrong URL, or unavailable
     for --retry-for seconds)
  4  the server refused the API key (401)
  5  forbidden (403)
  6  no such job (404)
  7  the server has no API key configured (503 missing_environment_api_key)
  8  any other error the server answered"""

DEFAULT_RETRY_FOR_S = 60.0
ONE_SHOT_RETRY_FOR_S = 10.0


def exit_code(state: JobState | None) -> int:
    return EXIT_SUCCEEDED if state is JobState.SUCCEEDED else EXIT_FAILED


class JobsCliError(click.ClickException):
    """One line on stderr (`Error: ...`) and a documented exit code, never a traceback."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = code  # type: ignore[misc]  # click exits with the instance's code


def server_options(retry_for_s: float) -> Any:
    def decorate(command: Any) -> Any:
        command = click.option(
            "--retry-for",
            "retry_for_s",
            default=retry_for_s,
            show_default=True,
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            help="Keep retrying an unreachable or briefly unavailable server this long, "
            "then exit 3. Refusals (401, 403, 404, 503 without a key) exit at once.",
        )(command)
        command = click.option(
            "--url",
            default=lambda: os.environ.get("SYNTH_JOBS_URL", DEFAULT_URL),
            show_default="$SYNTH_JOBS_URL or " + DEFAULT_URL,
            help="The jobs server.",
        )(command)
        return click.option(
            "--api-key", default=None, help="Key for the server (default: $ENVIRONMENT_API_KEY)."
        )(command)

    return decorate


class JobsServer:
    """A jobs server as the CLI uses it: each request retried only while the failure is
    transient and the retry budget lasts; streams given the same budget."""

    def __init__(self, url: str, api_key: str | None, retry_for_s: float) -> None:
        self.url = url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("ENVIRONMENT_API_KEY")
        self.sends_key = bool(key)
        self.retry_for_s = retry_for_s
        self.client = TaskAppClient(url, api_key, max_retries=0)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.client.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return await request_within(
            self.client, method, path, retry_for_s=self.retry_for_s, **kwargs
        )

    async def status(self, job_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/jobs/{job_id}")

    def stream_job(
        self,
        job_id: str,
        types: Any = None,
        since_id: int | None = None,
        **options: Any,
    ) -> AsyncIterator[JobEvent]:
        options.setdefault("retry_for_s", self.retry_for_s)
        return self.client.stream_job(job_id, types, since_id, **options)

    def failure(
        self, exc: TaskAppClientError | JobStreamError, job_id: str | None = None
    ) -> JobsCliError:
        """The one line (and exit code) that says what went wrong."""
        url, status, code = self.url, exc.status, exc.code
        message = str(getattr(exc, "message", exc))
        if status is None:
            if isinstance(exc, JobStreamError):  # its message names the URL and the give-up
                return JobsCliError(message, EXIT_UNREACHABLE)
            return JobsCliError(
                f"cannot reach the jobs server at {url} ({message}); "
                f"gave up after --retry-for {self.retry_for_s:g} s",
                EXIT_UNREACHABLE,
            )
        if status == 401:
            what = "refused the API key" if self.sends_key else "needs an API key"
            return JobsCliError(
                f"the jobs server at {url} {what} (401 {code}); "
                "pass --api-key or set ENVIRONMENT_API_KEY",
                EXIT_UNAUTHORISED,
            )
        if status == 403:
            return JobsCliError(
                f"the jobs server at {url} forbids this (403 {code}: {message})", EXIT_FORBIDDEN
            )
        if status == 404 and code == "job_not_found":
            return JobsCliError(
                f"no job {job_id!r} on the jobs server at {url} (404 job_not_found)"
                if job_id
                else f"the jobs server at {url} has no such job (404 job_not_found)",
                EXIT_NOT_FOUND,
            )
        if status in (404, 405):
            return JobsCliError(
                f"{url} does not serve the jobs API ({status} {code}: {message}); check --url",
                EXIT_UNREACHABLE,
            )
        if status == 503 and code == "missing_environment_api_key":
            return JobsCliError(
                f"the jobs server at {url} has no API key configured (503 {code}); "
                "set ENVIRONMENT_API_KEY where the server runs",
                EXIT_NO_SERVER_KEY,
            )
        if is_transient(status, code):
            return JobsCliError(
                f"the jobs server at {url} is unavailable ({status} {code}: {message}); "
                f"gave up after --retry-for {self.retry_for_s:g} s",
                EXIT_UNREACHABLE,
            )
        return JobsCliError(
            f"the jobs server at {url} answered {status} {code}: {message}", EXIT_SERVER_ERROR
        )


def _run(server: JobsServer, coroutine: Any, job_id: str | None = None) -> Any:
    try:
        return asyncio.run(coroutine)
    except (TaskAppClientError, JobStreamError) as exc:
        raise server.failure(exc, job_id) from None


@click.group()
def jobs() -> None:
    """Job events: serve them, and follow jobs live."""


jobs.add_command(serve)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else."
)


@jobs.command("list", epilog=EXIT_CODES_HELP)
@server_options(ONE_SHOT_RETRY_FOR_S)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
def list_jobs(url: str, api_key: str | None, retry_for_s: float, limit: int, as_json: bool) -> None:
    """List jobs, newest first (times in UTC)."""
    server = JobsServer(url, api_key, retry_for_s)

    async def fetch() -> Any:
        async with server:
            return await server.request("GET", "/api/jobs", params={"limit": limit})

    listed = [job_record(job) for job in _run(server, fetch())["jobs"]]
    if as_json:
        click.echo(json.dumps({"jobs": listed}, indent=2))
        return
    table = Table(title="jobs")
    for column in ("job_id", "kind", "state", "last_seq", "created"):
        table.add_column(column)
    for job in listed:
        table.add_row(
            job["job_id"], job["kind"], job["state"], str(job["last_seq"]), job["created_at"]
        )
    Console().print(table)


@jobs.command("status", epilog=EXIT_CODES_HELP)
@click.argument("job_id")
@server_options(ONE_SHOT_RETRY_FOR_S)
@json_option
def status(job_id: str, url: str, api_key: str | None, retry_for_s: float, as_json: bool) -> None:
    """Print a job's snapshot: its state, times (UTC), last event and metadata."""
    server = JobsServer(url, api_key, retry_for_s)

    async def fetch() -> Any:
        async with server:
            return await server.status(job_id)

    job = _run(server, fetch(), job_id)
    if as_json:
        click.echo(json.dumps(job_record(job), indent=2))
    else:
        click.echo("\n".join(status_lines(job)))


@jobs.command("stream", epilog=EXIT_CODES_HELP)
@click.argument("job_id")
@server_options(DEFAULT_RETRY_FOR_S)
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
    retry_for_s: float,
    types: str | None,
    jsonl_path: Path | None,
    since_id: int | None,
    timeout_s: float | None,
) -> None:
    """Print a job's events as compact lines until it ends; the exit code is the job's final
    state whatever --types shows."""
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
    server = JobsServer(url, api_key, retry_for_s)

    async def follow() -> JobState | None:
        async with server, asyncio.timeout(timeout_s):
            watcher = JobsWatcher(
                server,
                job_id,
                types=wanted,
                jsonl_path=jsonl_path,
                stream_options={"since_id": since_id},
            )
            watcher.hooks["event"] = lambda e: click.echo(compact_line(e, watcher.total))
            return await watcher.run()

    try:
        state = _run(server, follow(), job_id)
    except TimeoutError:
        click.echo(f"timed out after {timeout_s:g} s", err=True)
        raise SystemExit(EXIT_TIMEOUT) from None
    raise SystemExit(exit_code(state))


@jobs.command("watch", epilog=EXIT_CODES_HELP)
@click.argument("job_id")
@server_options(DEFAULT_RETRY_FOR_S)
@click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=click.FloatRange(min=0.01),
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
    retry_for_s: float,
    interval: float,
    no_sse: bool,
    quiet: bool,
    per_event: bool,
    timeout_s: float | None,
) -> None:
    """A live view of a job (RL, fine-tuning, eval...): state, step N of TOTAL, its metrics,
    recent logs; then a summary: final state, duration, each metric's last value and mean,
    the number of events, artifacts."""
    console = Console()
    server = JobsServer(url, api_key, retry_for_s)

    def print_event(event: JobEvent) -> None:
        kind = f"[{watcher.kind}] " if watcher.kind else ""
        console.print(
            kind + compact_line(event, watcher.total), markup=False, highlight=False, soft_wrap=True
        )

    options = {"poll_only": True, "poll_interval_s": interval} if no_sse else {}
    watcher = JobsWatcher(server, job_id, stream_options=options)
    if per_event and not quiet:
        watcher.hooks["event"] = print_event

    async def follow() -> JobState | None:
        async with server, asyncio.timeout(timeout_s):
            await watcher.refresh_snapshot()  # refusals and unknown jobs end here, at once
            if quiet or per_event:
                return await watcher.run()
            try:
                with Live(
                    live_view(watcher),
                    console=console,
                    refresh_per_second=max(1, int(1 / interval)),
                ) as live:
                    watcher.hooks["event"] = lambda e: live.update(live_view(watcher))
                    return await watcher.run()
            finally:
                if not console.is_terminal:
                    console.line()  # Live ends its last frame with a newline only on a tty

    try:
        state = _run(server, follow(), job_id)
    except TimeoutError:
        console.print(f"timed out after {timeout_s:g} s")
        raise SystemExit(EXIT_TIMEOUT) from None
    if quiet:
        console.print(f"job {job_id} {state.value if state else 'unknown'}", markup=False)
    else:
        print_summary(console, watcher)
    raise SystemExit(exit_code(state))
