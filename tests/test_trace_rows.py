"""Turning a session into rows is linear in its events and messages (issue 26 item 20), counted
in interpreter steps rather than timed, so the test holds on a loaded machine."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from synth_ai.tracing_v3 import RuntimeEvent, SessionTrace, SessionTracer, TimeRecord
from synth_ai.tracing_v3 import rows as rows_module
from synth_ai.tracing_v3.rows import ReservedIds, id_counts, session_rows


def session_of(events: int, *, round_trip: bool) -> SessionTrace:
    """`events` events and as many messages, ten per timestep (and a few outside any).
    Round-tripped through JSON, a step's events are equal copies of the history's, not the
    same objects: the rows then match them by equality."""
    session = SessionTracer().start("s")
    for step in range(events // 10):
        with session.timestep(f"t{step}"):
            for i in range(10):
                session.record_event(
                    RuntimeEvent(
                        system_instance_id="a",
                        time_record=TimeRecord(event_time=float(step * 10 + i)),
                        actions=[i],
                    )
                )
                session.record_message(f"m{step}-{i}", "observation")
    session.record_message("outside", "observation")
    trace = session.trace
    return SessionTrace.model_validate_json(trace.model_dump_json()) if round_trip else trace


def steps_to_rows(trace: SessionTrace) -> int:
    """Bytecode instructions executed in rows.py (its comprehensions included) for one
    session: a count of work that does not depend on the machine's load."""
    ids = ReservedIds({table: list(range(n)) for table, n in id_counts([trace]).items()})
    count = 0
    source = rows_module.__file__

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        nonlocal count
        if frame.f_code.co_filename != source:
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        rows = session_rows(trace, ids)
    finally:
        sys.settrace(None)
    steps = {row["id"] for row in rows["session_timesteps"]}
    assert all(row["timestep_id"] in steps for row in rows["events"])
    assert sum(row["timestep_id"] is None for row in rows["messages"]) == 1
    return count


@pytest.mark.parametrize("round_trip", [False, True], ids=["recorded", "loaded"])
def test_rows_take_work_linear_in_the_events(round_trip: bool) -> None:
    small = steps_to_rows(session_of(100, round_trip=round_trip))
    large = steps_to_rows(session_of(800, round_trip=round_trip))
    # 8x the events: linear work is about 8x; quadratic matching was about 30-60x
    assert large / small < 12, (small, large)
