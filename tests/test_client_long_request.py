"""The client against Modal's long-request protocol, and against answers that are not JSON.

`ModalFront` is a loopback stand-in for Modal's web front, doing what its docs describe
(https://modal.com/docs/guide/webhook-timeouts): a request still running after the hold
(150 s on Modal, a fraction of a second here) is answered `303 See Other` pointing at the same
URL plus `__modal_function_call_id`; that result URL blocks for another hold and redirects
again until the function returns, then answers with its result, as often as it is fetched,
without running the function again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synth_ai.eval import EvalConfig, run_eval
from synth_ai.task import (
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
    SyncTaskAppClient,
    TaskAppClient,
    TaskAppClientError,
    create_task_app,
    serve_in_background,
)

from .conftest import KEY, make_config, read_whole_body, rollout_body

CALL_PARAM = "__modal_function_call_id"
HOLD_S = 0.2


class ModalFront:
    """Modal's web front for long requests, over any ASGI app (see the module doc)."""

    def __init__(self, app: ASGIApp, hold_s: float = HOLD_S) -> None:
        self.app = app
        self.hold_s = hold_s
        self.calls: dict[str, asyncio.Task[tuple[int, list[Any], bytes]]] = {}
        self.received: list[tuple[str, str]] = []  # (method, query) of every request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope["query_string"].decode())
        self.received.append((scope["method"], scope["query_string"].decode()))
        if CALL_PARAM in query:
            call_id = query[CALL_PARAM][0]
            task = self.calls.get(call_id)
            if task is None:
                await Response("unknown call", 404)(scope, receive, send)
                return
        else:
            call_id = f"fc-{uuid.uuid4().hex[:12]}"
            body = await read_whole_body(receive)
            task = asyncio.create_task(self.run(scope, body))
            self.calls[call_id] = task
        done, _ = await asyncio.wait({task}, timeout=self.hold_s)
        if not done:
            host = dict(scope["headers"])[b"host"].decode()
            location = f"http://{host}{scope['path']}?{CALL_PARAM}={call_id}"
            await Response(status_code=303, headers={"location": location})(scope, receive, send)
            return
        status, headers, content = task.result()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def run(self, scope: Scope, body: bytes) -> tuple[int, list[Any], bytes]:
        """The function: the app answers the original request once, whoever waits for it."""
        sent = False
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> Message:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], message["headers"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        return answer["status"], answer["headers"], answer["body"]


class SlowRollouts:
    """A task app whose rollout takes `seed * step_s` seconds; counts the rollouts it ran."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.ran: list[int] = []
        self.done: list[int] = []

    async def rollout(self, request: Any, context: Any) -> RolloutResponse:
        seed = request.env.seed or 0
        self.ran.append(seed)
        await asyncio.sleep(seed * self.step_s)
        self.done.append(seed)
        step = RolloutStep(obs={"seed": seed}, reward=float(seed), done=True)
        return RolloutResponse(
            run_id=request.run_id,
            trajectories=[
                RolloutTrajectory(env_id=context.env_id, policy_id=context.policy_id, steps=[step])
            ],
            metrics={"episode_returns": [float(seed)], "num_steps": 1, "outcome_score": 1.0},
        )


@pytest.fixture
def modal_app() -> Iterator[tuple[ModalFront, SlowRollouts, str]]:
    slow = SlowRollouts(step_s=0.25)
    front = ModalFront(create_task_app(make_config(rollout=slow.rollout)))
    with serve_in_background(front) as url:
        yield front, slow, url


def rollout(url: str, seed: int, **options: Any) -> Any:
    async def call() -> Any:
        async with TaskAppClient(url, KEY, **options) as client:
            return await client.rollout(rollout_body(seed))

    return asyncio.run(call())


def test_a_long_rollout_follows_the_redirects_to_its_result(
    modal_app: tuple[ModalFront, SlowRollouts, str],
) -> None:
    front, slow, url = modal_app
    started = time.monotonic()
    answer = rollout(url, 6)  # 1.5 s of work behind a 0.2 s hold: about seven redirects
    assert answer.metrics.outcome_score == 1.0 and answer.trajectories[0].steps[0].reward == 6.0
    assert time.monotonic() - started >= 1.5
    posts = [q for method, q in front.received if method == "POST"]
    polls = [q for method, q in front.received if method == "GET"]
    assert posts == [""], "the request was sent again"
    assert polls and all(q.startswith(f"{CALL_PARAM}=fc-") for q in polls)  # redirects followed
    assert slow.ran == [6], "the rollout ran again"


def test_the_client_gives_up_at_its_own_deadline_without_resending(
    modal_app: tuple[ModalFront, SlowRollouts, str],
) -> None:
    front, slow, url = modal_app
    with pytest.raises(TaskAppClientError) as failed:
        rollout(url, 12, timeout=1.0)  # 3 s of work; the first redirect comes after 0.2 s
    assert (failed.value.status, failed.value.code) == (303, "deadline_exceeded")
    assert "1 s" in failed.value.message and CALL_PARAM not in failed.value.message
    assert [m for m, _ in front.received].count("POST") == 1 and slow.ran == [12]
    deadline = time.monotonic() + 10
    while not slow.done and time.monotonic() < deadline:  # let it finish before the server stops
        time.sleep(0.05)


def test_an_eval_survives_rollouts_longer_than_the_hold(
    modal_app: tuple[ModalFront, SlowRollouts, str],
) -> None:
    _, slow, url = modal_app
    config = EvalConfig(task_app_url=url, api_key=KEY, seeds=[0, 1, 2, 3, 4], concurrency=5)
    results, summary = asyncio.run(run_eval(config))
    assert sorted((r.seed, r.status, r.reward) for r in results) == [
        (s, "ok", 1.0) for s in range(5)
    ]
    assert max(r.latency_s for r in results) >= 1.0  # seed 4 ran past five holds
    assert summary.completed == 5 and sorted(slow.ran) == [0, 1, 2, 3, 4]
    with SyncTaskAppClient(url, KEY) as client:
        assert client.rollout(rollout_body(3)).metrics.outcome_score == 1.0


class Odd:
    """A server answering whatever a test scripts; records the headers it was sent."""

    def __init__(self) -> None:
        self.answer: Response = JSONResponse({})
        self.seen: list[dict[str, str]] = []

    async def endpoint(self, request: Request) -> Response:
        self.seen.append(dict(request.headers))
        return self.answer


@pytest.fixture(scope="module")
def odd() -> Iterator[tuple[Odd, str]]:
    server = Odd()
    app = Starlette(routes=[Route("/health", server.endpoint, methods=["GET"])])
    with serve_in_background(app) as url:
        yield server, url


def health(url: str) -> Any:
    async def call() -> Any:
        async with TaskAppClient(url, KEY, max_retries=0) as client:
            return await client.health()

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("status", "body", "media", "code", "excerpt"),
    [
        (200, "<html><h1>Gateway page</h1></html>", "text/html", "undecodable_response", "<h1>"),
        (200, '{"status": "ok", "serv', "application/json", "undecodable_response", '"serv'),
        (200, "", "text/plain", "undecodable_response", "(empty body)"),
        (502, "<html>Bad  gateway\n upstream</html>", "text/html", "http_502", "Bad gateway"),
        (302, "", "text/plain", "redirect_not_followed", "/elsewhere"),
    ],
)
def test_answers_that_are_not_json_are_client_errors_with_an_excerpt(
    odd: tuple[Odd, str], status: int, body: str, media: str, code: str, excerpt: str
) -> None:
    server, url = odd
    headers = {"location": "/elsewhere"} if status == 302 else None
    server.answer = Response(body, status_code=status, media_type=media, headers=headers)
    with pytest.raises(TaskAppClientError) as failed:
        health(url)
    assert (failed.value.status, failed.value.code) == (status, code)
    assert excerpt in failed.value.message


def test_a_303_is_followed_only_to_the_same_origin(odd: tuple[Odd, str]) -> None:
    server, url = odd
    other = Odd()
    other_app = Starlette(routes=[Route("/health", other.endpoint, methods=["GET"])])
    with serve_in_background(other_app) as elsewhere:
        server.answer = Response(status_code=303, headers={"location": f"{elsewhere}/health"})
        with pytest.raises(TaskAppClientError) as failed:
            health(url)
    assert failed.value.code == "redirect_not_followed" and other.seen == []
    server.answer = Response(status_code=303)
    with pytest.raises(TaskAppClientError) as bare:
        health(url)
    assert "without a Location" in bare.value.message
