"""A traced rollout's session handed to the writer thread (issue 26 item 12): a worker that
records after its deadline cannot corrupt what is written, and every write is answered, whatever
the batch's handler does."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from synth_ai.batch_writer import BatchWriter
from synth_ai.task import create_task_app, serve_in_background
from synth_ai.tracing_v3 import RuntimeEvent, TimeRecord, TraceReader

from .conftest import auth_headers, make_config, rollout_body

ROUNDS = 10


def test_a_worker_recording_after_its_deadline_leaves_the_writer_and_other_rollouts_whole(
    tmp_path: Path,
) -> None:
    late = threading.Event()  # the worker may record now: the writer holds the session
    recorded = threading.Event()

    def late_recorder(request: Any, context: Any) -> dict[str, Any]:
        if request.env.seed == 0:
            late.wait(30)  # still running past its deadline, as a stuck worker is
            for i in range(50):
                context.trace.record_event(
                    RuntimeEvent(system_instance_id="late", time_record=TimeRecord(event_time=i))
                )
            recorded.set()
        return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0}}

    db = tmp_path / "traces.db"
    app = create_task_app(
        make_config(late_recorder, tracing=True, trace_db=str(db), max_concurrent_rollouts=4)
    )
    runner = app.state.task_app.runner

    def delay_point(name: str) -> None:
        if name == "ids_reserved" and not late.is_set():
            late.set()  # the worker records while the writer is between counting and rows
            recorded.wait(30)

    with (
        serve_in_background(app) as url,
        httpx.Client(base_url=url, headers=auth_headers(), timeout=20) as client,
    ):
        warm = client.post("/rollout", json=rollout_body(1, run_id="warm"))
        assert warm.status_code == 200 and warm.json()["pipeline_metadata"]["trace_stored"]
        store = runner.tracing._tracer.store
        for round_ in range(ROUNDS):
            late.clear()
            recorded.clear()
            store.delay_point = delay_point
            body = rollout_body(0, run_id=f"late-{round_}", safety={"max_time_s": 0.2})
            timed_out = client.post("/rollout", json=body)
            assert timed_out.status_code == 504, timed_out.text
            assert recorded.wait(20)
            store.delay_point = None
            other = client.post("/rollout", json=rollout_body(2, run_id=f"other-{round_}"))
            assert other.status_code == 200, other.text
            assert other.json()["pipeline_metadata"]["trace_stored"] is True
        health = client.get("/health").json()["tracing"]
        assert health["write_errors"] == 0, health
    reader = TraceReader(db)
    try:
        for round_ in range(ROUNDS):
            stored = reader.load_session(f"late-{round_}")
            assert stored is not None
            assert [e.system_instance_id for e in stored.event_history].count("late") == 0
            assert stored.metadata["error"] == "rollout_timeout"
    finally:
        reader.close()


def outcomes_of(handler: Any, items: int) -> list[Any]:
    """Write `items` items in one batch (the first batch is held until all are queued) and
    answer each write's outcome; a write left unanswered fails the test instead of hanging."""
    gate, entered = threading.Event(), threading.Event()
    calls = 0

    def handle(batch: list[int]) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            gate.wait(30)
            return [None] * len(batch)
        return handler(batch)  # type: ignore[no-any-return]

    writer: BatchWriter[int, Any] = BatchWriter(handle, name="test-writer")

    async def scenario() -> list[Any]:
        first = asyncio.create_task(writer.write(-1))
        assert await asyncio.to_thread(entered.wait, 10)  # the writer holds the first batch
        writes = [asyncio.create_task(writer.write(i)) for i in range(items)]
        await asyncio.sleep(0)  # one turn: each write queues its item before it first waits
        assert writer.queued == items + 1
        gate.set()
        await first
        async with asyncio.timeout(10):
            return await asyncio.gather(*writes, return_exceptions=True)

    try:
        return asyncio.run(scenario())
    finally:
        gate.set()
        writer.close(5)


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(lambda batch: next(iter([])), id="raises-StopIteration"),
        pytest.param(lambda batch: [StopIteration()] * len(batch), id="answers-StopIteration"),
        pytest.param(lambda batch: [None], id="too-few-outcomes"),
        pytest.param(lambda batch: 1 / 0, id="raises"),
    ],
)
def test_every_write_of_a_batch_is_answered_whatever_the_handler_does(handler: Any) -> None:
    for _ in range(ROUNDS):
        outcomes = outcomes_of(handler, 3)
        assert len(outcomes) == 3
        assert all(isinstance(o, Exception) for o in outcomes), outcomes
