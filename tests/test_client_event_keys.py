"""`TaskAppClient.emit_events` sends an `Idempotency-Key`, the same on every retry, so a post
whose answer was lost is sent again and stored once: the server answers the retry with the
first post's seqs.

A real jobs server on loopback behind a real-ASGI wrapper that runs the first post of events
to the end (it is stored) and then withholds the answer until the client gives up on it: a
lost answer, as a dropped connection would lose it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synth_ai.jobs import create_jobs_app
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY


class LosesFirstAnswer:
    """Runs every request; withholds the answer to the first post of events."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.keys: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        posting = scope["type"] == "http" and scope["method"] == "POST"
        if not (posting and scope["path"].endswith("/events")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        self.keys.append(key.decode() if key else None)
        if len(self.keys) > 1:
            await self.app(scope, receive, send)
            return
        withheld: list[Message] = []

        async def hold(message: Message) -> None:
            withheld.append(message)

        await self.app(scope, receive, hold)  # stored: the answer is only withheld
        while (await receive())["type"] != "http.disconnect":
            pass


def test_a_post_whose_answer_was_lost_is_sent_again_and_stored_once(tmp_path: Path) -> None:
    app = LosesFirstAnswer(create_jobs_app(tmp_path / "jobs.db"))
    events = [{"type": "log", "message": f"line {n}"} for n in range(3)]

    async def scenario(url: str) -> tuple[list[int], dict[str, Any]]:
        async with TaskAppClient(url, KEY) as client:
            job_id = (await client.create_job("custom", {}))["job_id"]
            # its read timeout is how long it waits for the withheld answer: long enough that
            # only the withheld one runs out, even on a loaded machine
            async with TaskAppClient(
                url, KEY, timeout=5.0, max_retries=2, backoff_s=0.01
            ) as emitting:
                seqs = await emitting.emit_events(job_id, events)
            return seqs, await client.events(job_id)

    with serve_in_background(app) as url:
        seqs, page = asyncio.run(scenario(url))
    stored = [e for e in page["events"] if e["type"] == "log"]
    assert [e["message"] for e in stored] == ["line 0", "line 1", "line 2"]
    assert seqs == [e["seq"] for e in stored]
    assert len(app.keys) == 2 and app.keys[0] is not None and app.keys[0] == app.keys[1]
