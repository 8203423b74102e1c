"""`synth-ai check` run as a user runs it (its own process) against real servers on loopback:
one line and exit 3 when nothing can be checked, `skipped` never shown as a pass, infrastructure
errors failing the rollout checks, and the error-path probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synth_ai.task import InfrastructureError, create_task_app, serve_in_background

from .conftest import KEY, make_config
from .processes import free_port
from .test_check import broken_app


def synth_check(*args: str) -> subprocess.CompletedProcess[str]:
    """`synth-ai check ARGS` in its own process, with a wide terminal for the table."""
    return subprocess.run(
        [sys.executable, "-m", "synth_ai", "check", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "250"},
    )


def statuses(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """Each check's (status, detail) from `--json` output."""
    report = json.loads(result.stdout)
    return {c["name"]: (c["status"], c["detail"]) for c in report["checks"]}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def rewriting_rollouts(app: ASGIApp, rewrite: Callable[[dict[str, Any]], None]) -> ASGIApp:
    """`app`, with every 200 answer of POST /rollout passed through `rewrite` (to play an app
    of another generation, or a broken one)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/rollout":
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if start["status"] == 200:
                data = json.loads(body)
                rewrite(data)
                body = json.dumps(data).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return wrapped


def everywhere(answer: Callable[[Request], Response]) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return answer(request)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


def only_root() -> Starlette:
    """A plain server: something at /, Starlette's plain-text 404 everywhere else."""

    async def root(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", root)])


PAGE = "<!doctype html><html><body><h1>Welcome to nginx!</h1>" + "<p>filler</p>" * 50
NOT_TASK_APPS: dict[str, Callable[[], ASGIApp]] = {
    "an html page": lambda: everywhere(lambda request: HTMLResponse(PAGE)),
    "a plain 404 server": only_root,
}


def test_nothing_answering_is_one_line_and_exit_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = synth_check(url, "--api-key", KEY, "--offline-policy")
    assert result.returncode == 3, result
    assert one_line(result.stderr) == f"check: nothing answers at {url} (ConnectError)"
    assert result.stdout == ""
    as_json = synth_check(url, "--api-key", KEY, "--json")
    assert as_json.returncode == 3
    report = json.loads(as_json.stdout)
    assert report["passed"] is False and report["checks"] == []
    assert "nothing answers" in report["stopped"] and "nothing answers" in one_line(as_json.stderr)


@pytest.mark.parametrize("kind", sorted(NOT_TASK_APPS))
def test_a_server_that_is_not_a_task_app_is_one_line_and_exit_3(kind: str) -> None:
    with serve_in_background(NOT_TASK_APPS[kind]()) as url:
        result = synth_check(url, "--api-key", KEY, "--offline-policy")
    assert result.returncode == 3, result
    line = one_line(result.stderr)
    assert f"{url} is not a task app" in line and "GET /health answered" in line
    assert "<" not in result.stderr + result.stdout  # no HTML anywhere
    assert result.stdout == ""


def refusing_gateway() -> Starlette:
    return everywhere(lambda request: JSONResponse({"detail": "forbidden"}, status_code=403))


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_one_line_and_exit_3(status: int, math_app_url: str) -> None:
    if status == 401:
        result = synth_check(math_app_url, "--api-key", "not-the-key", "--offline-policy")
    else:
        with serve_in_background(refusing_gateway()) as url:
            result = synth_check(url, "--api-key", KEY, "--offline-policy")
    assert result.returncode == 3, result
    code = " unauthorised" if status == 401 else ""  # the envelope's code when there is one
    assert (
        one_line(result.stderr) == f"check: the key is refused: GET /health answered {status}{code}"
    )
    assert result.stdout == ""


@pytest.fixture(scope="module")
def open_app_url() -> Iterator[str]:
    """An app with auth turned off: it never answers 401."""
    with serve_in_background(create_task_app(make_config(require_api_key=False))) as url:
        yield url


def test_a_check_without_a_401_to_inspect_is_skipped_not_passed(open_app_url: str) -> None:
    result = synth_check(open_app_url, "--api-key", KEY, "--offline-policy", "--json")
    assert result.returncode == 1, result  # the open /health itself fails its rule
    found = statuses(result)
    assert found["health_401_without_key"][0] == "fail"
    status, detail = found["no_key_material_in_401"]
    assert status == "skipped" and "was never refused" in detail
    check = next(c for c in json.loads(result.stdout)["checks"] if c["status"] == "skipped")
    assert check["passed"] is False
    table = synth_check(open_app_url, "--api-key", KEY, "--offline-policy")
    row = next(line for line in table.stdout.splitlines() if "no_key_material_in_401" in line)
    assert "skipped" in row and "pass" not in row
    assert "skipped: no_key_material_in_401" in table.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def older_generation_url(math_app: Starlette) -> Iterator[str]:
    """The math app as an app of an older generation: no `outcome_reward` in its answers."""
    app = rewriting_rollouts(math_app, lambda data: data["metrics"].pop("outcome_reward"))
    with serve_in_background(app) as url:
        yield url


def test_a_skipped_check_is_visible_and_does_not_fail_the_run(older_generation_url: str) -> None:
    result = synth_check(older_generation_url, "--api-key", KEY, "--offline-policy")
    assert result.returncode == 0, result
    row = next(line for line in result.stdout.splitlines() if "rollout_reward_names_agree" in line)
    assert "skipped" in row and "older generation" in row
    verdict = result.stdout.splitlines()[-1]
    assert verdict == "all required checks passed (skipped: rollout_reward_names_agree)"
    report = json.loads(
        synth_check(older_generation_url, "--api-key", KEY, "--offline-policy", "--json").stdout
    )
    assert report["passed"] is True
    assert [c["name"] for c in report["checks"] if c["status"] == "skipped"] == [
        "rollout_reward_names_agree"
    ]


def raise_infra(request: Any, context: Any) -> None:
    raise InfrastructureError("dataset_unavailable", "the dataset bucket answered 503")


@pytest.fixture(scope="module")
def infra_app_url() -> Iterator[str]:
    with serve_in_background(create_task_app(make_config(rollout=raise_infra))) as url:
        yield url


def test_rollouts_answering_infrastructure_errors_fail(
    math_app_url: str, infra_app_url: str
) -> None:
    dead_policy = f"http://127.0.0.1:{free_port()}/v1"
    unreachable = synth_check(math_app_url, "--api-key", KEY, "--inference-url", dead_policy)
    infra = synth_check(infra_app_url, "--api-key", KEY, "--offline-policy", "--json")
    assert unreachable.returncode == 1, unreachable
    assert "failed: rollout_eval, rollout_rl_cid_rules" in unreachable.stdout
    assert "inference_unreachable" in unreachable.stdout
    assert infra.returncode == 1, infra
    for name in ("rollout_eval", "rollout_rl_cid_rules"):
        status, detail = statuses(infra)[name]
        assert status == "fail" and "infrastructure error" in detail
        assert "dataset_unavailable: the dataset bucket answered 503" in detail


@pytest.fixture(scope="module")
def error_path_urls(math_app: Starlette) -> Iterator[tuple[str, str]]:
    """An app outside the error envelope whose reward names agree, and the math app with
    reward names that disagree."""

    def disagree(data: dict[str, Any]) -> None:
        data["metrics"]["outcome_reward"] = data["metrics"]["outcome_score"] + 0.5

    plain = broken_app(leaks_key=False, open_health=False, failing_rollout=False, reward=0.5)
    with (
        serve_in_background(plain) as one,
        serve_in_background(rewriting_rollouts(math_app, disagree)) as two,
    ):
        yield one, two


def test_the_error_path_and_reward_name_probes(
    math_app_url: str, error_path_urls: tuple[str, str]
) -> None:
    plain, disagreeing = error_path_urls
    good = statuses(synth_check(math_app_url, "--api-key", KEY, "--offline-policy", "--json"))
    assert good["rollout_malformed_json_4xx"] == ("pass", "400 invalid_json")
    assert good["unknown_route_404"] == ("pass", "404 not_found")
    assert good["rollout_reward_names_agree"] == ("pass", "equal (eval, rl)")
    found = statuses(synth_check(plain, "--api-key", KEY, "--offline-policy", "--json"))
    assert found["rollout_malformed_json_4xx"][0] == "fail"
    assert "answered 500 (text/plain), not a 4xx" in found["rollout_malformed_json_4xx"][1]
    assert found["unknown_route_404"][0] == "fail"
    assert "404 (text/plain), not in the error envelope" in found["unknown_route_404"][1]
    assert found["rollout_reward_names_agree"][0] == "pass"
    result = synth_check(disagreeing, "--api-key", KEY, "--offline-policy", "--json")
    assert result.returncode == 1
    status, detail = statuses(result)["rollout_reward_names_agree"]
    assert status == "fail" and "outcome_reward is 1.5, outcome_score 1.0" in detail
