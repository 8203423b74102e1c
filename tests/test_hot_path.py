"""The lean /rollout path keeps every rule: the same answers straight from the edge layer as
through the router, deadlines short and long and on a new event loop, clients
leaving while queued, bodies counted whenever no enforced Content-Length bounds them, auth with
and without CORS, and the faster server whenever it is installed."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from synth_ai.task import RolloutResponse, create_task_app, serve_in_background
from synth_ai.task.serving import listening_socket

from .conftest import (
    KEY,
    InProcess,
    auth_headers,
    echo_rollout,
    make_config,
    rollout_body,
    wait_for,
)
from .processes import start_server, stop_server

HEADERS = auth_headers()


async def sleepy(request: Any, context: Any) -> dict[str, Any]:
    await asyncio.sleep(30)
    return {}


@pytest.mark.parametrize("deadline_s", [0.05, 0.3], ids=["own-timer", "armed-by-the-sweep"])
def test_deadlines_short_and_long_answer_504_on_every_new_loop(deadline_s: float) -> None:
    client = InProcess(create_task_app(make_config(sleepy)))  # one event loop per request
    for _ in range(2):
        body = rollout_body(safety={"max_time_s": deadline_s})
        response = client.post("/rollout", json=body, headers=HEADERS)
        assert response.status_code == 504
        assert response.json()["detail"]["error"]["timeout_s"] == deadline_s


def test_an_executor_model_is_answered_as_built_with_the_cid_stamped() -> None:
    built: list[RolloutResponse] = []

    def keeps(request: Any, context: Any) -> RolloutResponse:
        response = echo_rollout(request, context)
        response.pipeline_metadata["from_executor"] = True
        built.append(response)
        return response

    body = rollout_body(
        seed=3, policy={"config": {"inference_url": "http://policy.local/v1?x=1&cid=abc"}}
    )
    response = InProcess(create_task_app(make_config(keeps))).post(
        "/rollout", json=body, headers=HEADERS
    )
    assert response.status_code == 200
    data = response.json()
    assert data["pipeline_metadata"]["from_executor"] is True
    assert data["trace_correlation_id"] == "abc"
    stamped = "http://policy.local/v1/chat/completions?x=1&cid=abc"
    assert data["pipeline_metadata"]["inference_url"] == stamped
    assert data["trajectories"][0]["steps"][0]["info"]["meta"]["inference_url"] == stamped
    assert data["trajectories"][0]["trace_correlation_id"] == "abc"
    assert built[0].trace_correlation_id == "abc"  # stamped in place, not on a copy
    # stamped as an assignment would: what the stamp set counts as set
    stamped_fields = {"run_id", "trace_correlation_id", "inference_url"}
    assert stamped_fields <= built[0].model_fields_set
    trajectory = built[0].trajectories[0]
    assert {"trace_correlation_id", "inference_url"} <= trajectory.model_fields_set
    assert built[0].model_dump(exclude_unset=True)["inference_url"] == stamped


class PassThrough:
    """Author middleware that changes nothing: its presence routes /rollout the long way."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def test_rollout_answers_the_same_straight_from_the_edge_and_through_the_router() -> None:
    def rollout(request: Any, context: Any) -> RolloutResponse:
        if request.env.seed == 13:
            raise RuntimeError("unlucky")
        return echo_rollout(request, context)

    def config(**extra: Any) -> Any:
        return make_config(rollout, max_request_bytes=2000, **extra)

    direct = InProcess(create_task_app(config()))
    routed = InProcess(create_task_app(config(middleware=[Middleware(PassThrough)])))
    json_type = {"content-type": "application/json"}
    requests: list[tuple[str, dict[str, Any]]] = [
        ("POST", {"json": rollout_body(4), "headers": HEADERS}),
        ("POST", {"json": rollout_body(13), "headers": HEADERS}),
        ("POST", {"json": {"env": {"seed": 1}}, "headers": HEADERS}),
        ("POST", {"content": b"{not json", "headers": {**HEADERS, **json_type}}),
        ("POST", {"content": b"{}", "headers": {**HEADERS, "content-type": "text/plain"}}),
        ("POST", {"json": rollout_body(1, padding="x" * 5000), "headers": HEADERS}),
        ("POST", {"json": rollout_body(1)}),
        ("GET", {"headers": HEADERS}),
    ]
    for method, options in requests:
        one, other = (client.request(method, "/rollout", **options) for client in (direct, routed))
        assert (one.status_code, one.json()) == (other.status_code, other.json()), options
    assert [direct.request(m, "/rollout", **o).status_code for m, o in requests] == [
        200,
        500,
        422,
        400,
        415,
        413,
        401,
        405,
    ]


def test_an_unexpected_error_is_the_500_envelope_on_both_paths_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The edge answers the hot route outside Starlette's error layer, so it must answer a
    failure no rule expects (here an answer that cannot be written as JSON) as that layer
    does through the router: the 500 envelope, with the traceback in the server's log."""

    def unwritable(request: Any, context: Any) -> RolloutResponse:
        response = echo_rollout(request, context)
        response.pipeline_metadata["handle"] = object()
        return response

    answers = []
    for middleware in ([], [Middleware(PassThrough)]):
        app = create_task_app(make_config(unwritable, middleware=middleware))
        caplog.clear()
        with caplog.at_level(logging.ERROR), serve_in_background(app) as url:
            response = httpx.post(f"{url}/rollout", json=rollout_body(2), headers=HEADERS)
            assert httpx.get(f"{url}/health", headers=HEADERS).json()["healthy"] is True
        answers.append((response.status_code, response.json()))
        logged = [r for r in caplog.records if r.name == "synth_ai.task"]
        assert logged and logged[0].exc_info is not None, "the traceback must reach the log"
    assert answers[0] == answers[1]
    assert answers[0][0] == 500
    assert answers[0][1]["detail"]["error"]["code"] == "internal_error"


def test_added_middleware_sees_the_hot_route_too() -> None:
    seen: list[str] = []

    class Recording(PassThrough):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope.get("path", ""))
            await self.app(scope, receive, send)

    app = create_task_app(make_config())
    app.add_middleware(Recording)
    assert InProcess(app).post("/rollout", json=rollout_body(), headers=HEADERS).status_code == 200
    assert seen == ["/rollout"]


def test_a_client_that_leaves_while_queued_frees_its_place() -> None:
    release = threading.Event()
    seeds: list[int] = []

    def blocking(request: Any, context: Any) -> RolloutResponse:
        seeds.append(request.env.seed)
        release.wait(30)
        return echo_rollout(request, context)

    def post(seed: int, timeout: float) -> httpx.Response:
        return httpx.post(
            f"{url}/rollout", json=rollout_body(seed), headers=HEADERS, timeout=timeout
        )

    def rollouts() -> dict[str, int]:
        return httpx.get(f"{url}/health", headers=HEADERS).json()["rollouts"]

    app = create_task_app(make_config(blocking, max_concurrent_rollouts=1))
    with serve_in_background(app) as url:
        first = threading.Thread(target=post, args=(1, 30))
        first.start()
        wait_for(lambda: rollouts()["running"] == 1)
        with pytest.raises(httpx.ReadTimeout):
            post(2, 0.3)
        wait_for(lambda: rollouts()["waiting"] == 0)
        release.set()
        first.join(30)
        assert rollouts() == {"running": 0, "waiting": 0}
    assert seeds == [1], "a rollout whose client left while it was queued must never start"


@contextmanager
def served_with(app: Any, http: str) -> Iterator[tuple[str, int]]:
    """`app` on uvicorn with the given HTTP implementation, from a thread."""
    sock = listening_socket()
    server = uvicorn.Server(uvicorn.Config(app, http=http, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


HTTP_IMPLEMENTATIONS = ["h11"] + (["httptools"] if importlib.util.find_spec("httptools") else [])


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
def test_a_chunked_body_behind_a_small_content_length_is_still_refused(http: str) -> None:
    ran: list[object] = []

    def recording(request: Any, context: Any) -> RolloutResponse:
        ran.append(request)
        return echo_rollout(request, context)

    app = create_task_app(make_config(recording, max_request_bytes=1000))
    payload = b'{"run_id": "r", "padding": "' + b"x" * 5000 + b'"}'
    request = (
        b"POST /rollout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-API-Key: {KEY}\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(payload):x}\r\n".encode()
        + payload
        + b"\r\n0\r\n\r\n"
    )
    with served_with(app, http) as address, socket.create_connection(address, 10) as conn:
        conn.sendall(request)
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]
    # h11 lets Transfer-Encoding win (so the body is counted); httptools refuses the request
    assert status_line.split()[1] == {"h11": b"413", "httptools": b"400"}[http], status_line
    assert ran == []


def test_auth_is_enforced_with_cors_in_front_of_it() -> None:
    client = InProcess(create_task_app(make_config(cors_origins=["https://ok.example"])))
    origin = {"Origin": "https://ok.example"}
    refused = client.post("/rollout", json=rollout_body(), headers=origin)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://ok.example"
    assert refused.json()["detail"]["error"]["code"] == "unauthorised"
    allowed = client.post("/rollout", json=rollout_body(), headers={**origin, **HEADERS})
    assert allowed.status_code == 200


FAST_SERVER = bool(importlib.util.find_spec("uvloop") and importlib.util.find_spec("httptools"))


@pytest.mark.skipif(not FAST_SERVER, reason="the standard extra (uvloop, httptools) is absent")
def test_served_apps_run_on_uvloop_when_it_is_installed() -> None:
    loops: list[str] = []

    async def noting(request: Any, context: Any) -> RolloutResponse:
        loops.append(type(asyncio.get_running_loop()).__module__)
        return echo_rollout(request, context)

    with serve_in_background(create_task_app(make_config(noting))) as url:
        response = httpx.post(f"{url}/rollout", json=rollout_body(), headers=HEADERS)
    assert response.status_code == 200
    assert loops[0].startswith("uvloop")


@pytest.mark.skipif(
    not FAST_SERVER or not sys.platform.startswith("linux"),
    reason="needs the standard extra, and /proc to see what a process loaded",
)
def test_synth_ai_serve_loads_uvloop_and_httptools_when_installed() -> None:
    process, url, output = start_server(["serve", "math"])
    try:
        assert httpx.get(f"{url}/").status_code == 200
        maps = Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        stop_server(process, output)
    assert "uvloop" in maps
    assert "httptools" in maps
