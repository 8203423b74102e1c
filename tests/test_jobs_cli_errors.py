"""`synth-ai jobs ...` when it cannot follow a job: one line, a documented exit code, and no
retry loop for a refusal; a bounded one (`--retry-for`) for a server that is not there."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from synth_ai.cli import main
from synth_ai.cli.jobs import (
    EXIT_FORBIDDEN,
    EXIT_NO_SERVER_KEY,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHORISED,
    EXIT_UNREACHABLE,
)
from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.jobs.client import JobStreamError
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY
from .processes import free_port

COMMANDS = ("list", "status", "stream", "watch")


class Counting:
    """Passes requests through and keeps their paths, to tell one attempt from a retry loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def answering(status: int, code: str, headers: dict[str, str] | None = None) -> Starlette:
    """A server that answers every request with one error in the envelope."""

    async def everything(request: Request) -> Response:
        body = {"detail": {"error": {"code": code, "message": f"always {status}"}}}
        return JSONResponse(body, status_code=status, headers=headers)

    return Starlette(routes=[Route("/{path:path}", everything)])


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Counting]]:
    """A real jobs server, its requests counted."""
    settings = StreamSettings(end_grace_s=0.05)
    app = Counting(create_jobs_app(tmp_path_factory.mktemp("j") / "j.db", settings=settings))
    with serve_in_background(app) as url:
        yield url, app


def new_job(url: str) -> str:
    return httpx.post(f"{url}/api/jobs", json={}, headers={"X-API-Key": KEY}).json()["job_id"]


def invoke(command: str, url: str, job_id: str, *options: str) -> Result:
    target = [] if command == "list" else [job_id]
    return CliRunner().invoke(main, ["jobs", command, *target, "--url", url, *options])


def one_line(result: Result) -> str:
    """The command printed exactly one line, and no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_key_is_refused_in_one_line_without_retrying(
    jobs: tuple[str, Counting], command: str
) -> None:
    url, counted = jobs
    job_id = new_job(url)
    counted.paths.clear()
    result = invoke(command, url, job_id, "--api-key", "wrong", "--retry-for", "30")
    line = one_line(result)
    assert result.exit_code == EXIT_UNAUTHORISED
    assert line.startswith(f"Error: the jobs server at {url} refused the API key (401")
    assert "--api-key" in line and len(counted.paths) == 1


@pytest.mark.parametrize("command", ["status", "stream", "watch"])
def test_an_unknown_job_is_named(jobs: tuple[str, Counting], command: str) -> None:
    url, counted = jobs
    counted.paths.clear()
    result = invoke(command, url, "job_nope", "--retry-for", "30")
    line = one_line(result)
    assert result.exit_code == EXIT_NOT_FOUND
    assert line == f"Error: no job 'job_nope' on the jobs server at {url} (404 job_not_found)"
    assert len(counted.paths) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_a_server_without_a_key_says_so(
    jobs: tuple[str, Counting], command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, counted = jobs
    job_id = new_job(url)
    monkeypatch.delenv("ENVIRONMENT_API_KEY")  # the server (in this process) reads it per request
    counted.paths.clear()
    result = invoke(command, url, job_id, "--api-key", KEY, "--retry-for", "30")
    line = one_line(result)
    assert result.exit_code == EXIT_NO_SERVER_KEY
    assert "has no API key configured (503 missing_environment_api_key)" in line
    assert "set ENVIRONMENT_API_KEY where the server runs" in line
    assert len(counted.paths) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_forbidden(command: str) -> None:
    app = Counting(answering(403, "forbidden"))
    with serve_in_background(app) as url:
        result = invoke(command, url, "job_x", "--retry-for", "30")
    line = one_line(result)
    assert result.exit_code == EXIT_FORBIDDEN
    assert line == f"Error: the jobs server at {url} forbids this (403 forbidden: always 403)"
    assert len(app.paths) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_a_server_that_is_down_is_named_and_given_up_on(command: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = invoke(command, url, "job_x", "--retry-for", "1")
    line = one_line(result)
    assert result.exit_code == EXIT_UNREACHABLE
    assert url in line and "ConnectError" in line and "gave up after" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_a_url_that_is_not_a_jobs_server(command: str) -> None:
    with serve_in_background(Starlette()) as url:  # answers 404 to everything
        result = invoke(command, url, "job_x", "--retry-for", "30")
    line = one_line(result)
    assert result.exit_code == EXIT_UNREACHABLE
    assert line.startswith(f"Error: {url} does not serve the jobs API (404")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_server_that_stays_unavailable_is_retried_then_given_up_on(command: str) -> None:
    app = Counting(answering(503, "overloaded", {"Retry-After": "1"}))
    with serve_in_background(app) as url:
        result = invoke(command, url, "job_x", "--retry-for", "0.5")
    line = one_line(result)
    assert result.exit_code == EXIT_UNREACHABLE
    assert url in line and "503 overloaded" in line and "gave up after" in line
    assert len(app.paths) >= 2  # it was retried, unlike a refusal


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    command = ["jobs", "stream", "job_x", "--url", url, "--retry-for", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "synth_ai", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == EXIT_UNREACHABLE and done.stdout == ""
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and f"{url}/api/jobs/job_x/stream" in errors[0]


def test_stream_job_spends_its_retry_budget_then_raises() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def follow(**options: Any) -> list[Any]:
        async with TaskAppClient(url, KEY) as client:
            return [e async for e in client.stream_job("job_x", **options)]

    with pytest.raises(JobStreamError) as raised:
        asyncio.run(follow(retry_for_s=0.3))
    assert raised.value.status is None and raised.value.code == "unreachable"
    assert raised.value.url == f"{url}/api/jobs/job_x/stream"
    with pytest.raises(JobStreamError) as counted:
        asyncio.run(follow(retry_for_s=None, max_reconnects=2, backoff_s=0.001))
    assert "3 attempts" in str(counted.value)
