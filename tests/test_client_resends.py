"""The client never sends a rollout again once the server may have started it (issue 26 item
15): only connect errors before sending, 429, and 503 (answers that say nothing ran) are
resent; a 504 rollout_timeout or a read timeout is raised after one start."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest

from synth_ai.task import TaskAppClient, TaskAppClientError, create_task_app, serve_in_background

from .conftest import KEY, make_config, rollout_body, wait_for
from .processes import free_port

ROUNDS = 3


class NoWaitClient(TaskAppClient):
    """Counts its backoff pauses instead of waiting them out; `on_pause` runs at each."""

    def __init__(self, *args: Any, on_pause: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pauses = 0
        self.on_pause = on_pause

    async def pause(self, seconds: float) -> None:
        self.pauses += 1
        if self.on_pause is not None:
            self.on_pause()


class Counting:
    """A sync executor that counts its starts and ends; seed 0 blocks until `gate` is set."""

    def __init__(self) -> None:
        self.starts = 0
        self.ends = 0
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, request: Any, context: Any) -> dict[str, Any]:
        with self._lock:
            self.starts += 1
        if request.env.seed == 0:
            self.gate.wait(30)
        with self._lock:
            self.ends += 1
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    def reset(self) -> None:
        self.starts = self.ends = 0
        self.gate.clear()

    def ran_once(self) -> bool:
        """Once the gate is open: wait for what was started to end, then say whether exactly
        one rollout ran (a worker may start late on a loaded machine; it is still counted)."""
        wait_for(lambda: self.ends >= 1 and self.ends == self.starts, timeout_s=30)
        return self.starts == 1


def rollout(url: str, body: dict[str, Any], **options: Any) -> tuple[Any, NoWaitClient]:
    async def call() -> tuple[Any, NoWaitClient]:
        client = NoWaitClient(url, KEY, max_retries=3, **options)
        async with client:
            try:
                return await client.rollout(body), client
            except TaskAppClientError as exc:
                return exc, client

    return asyncio.run(call())


def test_a_rollout_past_its_deadline_is_not_sent_again() -> None:
    executor = Counting()
    with serve_in_background(create_task_app(make_config(executor))) as url:
        for n in range(ROUNDS):
            executor.reset()
            body = rollout_body(0, run_id=f"slow-{n}", safety={"max_time_s": 0.2})
            answer, client = rollout(url, body)
            executor.gate.set()
            assert isinstance(answer, TaskAppClientError) and answer.status == 504
            assert answer.code == "rollout_timeout"
            assert client.pauses == 0 and executor.ran_once()


def test_a_rollout_the_client_stopped_waiting_for_is_not_sent_again() -> None:
    executor = Counting()
    try:
        with serve_in_background(create_task_app(make_config(executor))) as url:
            for n in range(ROUNDS):
                executor.reset()
                answer, client = rollout(url, rollout_body(0, run_id=f"read-{n}"), timeout=0.5)
                assert isinstance(answer, TaskAppClientError) and answer.status is None
                assert "ReadTimeout" in answer.message
                assert client.pauses == 0
                executor.gate.set()  # the one rollout sent ends; no other was started
                assert executor.ran_once()
    finally:
        executor.gate.set()


def test_a_429_is_sent_again_and_then_runs_once() -> None:
    executor = Counting()
    config = make_config(executor, max_concurrent_rollouts=1, max_queued_rollouts=0)
    try:
        with serve_in_background(create_task_app(config)) as url:

            async def scenario() -> None:
                async with NoWaitClient(url, KEY) as holder:
                    held = asyncio.create_task(holder.rollout(rollout_body(0)))
                    while (await holder.health())["rollouts"]["running"] != 1:
                        pass
                    client = NoWaitClient(url, KEY, on_pause=executor.gate.set)
                    async with client:
                        answer = await client.rollout(rollout_body(1))
                    assert answer.metrics.outcome_score == 1.0
                    assert client.pauses >= 1
                    await held

            asyncio.run(scenario())
            assert executor.starts == 2
    finally:
        executor.gate.set()


@pytest.mark.parametrize("status", [429, 503])
def test_answers_that_say_nothing_ran_are_sent_again(status: int) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    answers = [status, 200]

    async def endpoint(request: Request) -> JSONResponse:
        code = answers.pop(0)
        return JSONResponse({"run_id": "r", "metrics": {}} if code == 200 else {}, code)

    app = Starlette(routes=[Route("/rollout", endpoint, methods=["POST"])])
    with serve_in_background(app) as url:
        answer, client = rollout(url, rollout_body(1))
    assert not isinstance(answer, Exception) and client.pauses == 1


def test_a_connect_error_before_sending_is_sent_again() -> None:
    port = free_port()
    executor = Counting()
    with contextlib.ExitStack() as later:

        def start_server() -> None:
            app = create_task_app(make_config(executor))
            later.enter_context(serve_in_background(app, port=port))

        answer, client = rollout(f"http://127.0.0.1:{port}", rollout_body(1), on_pause=start_server)
    assert not isinstance(answer, Exception), answer
    assert client.pauses == 1 and executor.starts == 1
