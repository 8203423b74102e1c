"""Session traces round-trip through the store on each engine (SQLite, PostgreSQL); failed
writes are counted, not lost; an acknowledged session is readable at once."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_ai.storage import StorageOutage
from synth_ai.tracing_v3 import (
    LLMUsage,
    RuntimeEvent,
    SessionTrace,
    SessionTracer,
    TimeRecord,
    TraceReader,
    TraceStore,
    write_sft_jsonl,
)
from synth_ai.tracing_v3.sft import session_examples

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


async def record(
    tracer: SessionTracer, session_id: str, content: object, reward: float
) -> SessionTrace:
    started = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    async with tracer.session(session_id, {"seed": 7, "note": content}) as session:
        session.record_message({"system": "be brief"}, "system")
        async with session.timestep("turn-0"):
            session.record_message(content, "observation")
            session.record_chat_completion(
                {
                    "model": "m1",
                    "messages": [{"role": "user", "content": "2+2?"}],
                    "tools": [{"type": "function", "function": {"name": "submit"}}],
                    "temperature": 0.2,
                },
                {
                    "id": "c1",
                    "choices": [
                        {
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "id": "t1",
                                        "function": {"name": "submit", "arguments": '{"a": "4"}'},
                                    }
                                ],
                            },
                            "finish_reason": "tool_calls",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                },
                started_at=started,
                completed_at=started + timedelta(milliseconds=250),
            )
            index = session.record_event(
                RuntimeEvent(
                    system_instance_id="runtime",
                    time_record=TimeRecord(event_time=1.5),
                    actions=[{"op": "submit"}],
                )
            )
            session.record_environment(reward, terminated=True, state_after={"done": True})
            session.record_event_reward(index, 0.25, reward_type="shaped", key="k")
        session.record_outcome_reward(reward, achievements_count=1, reason="graded")
    return session.trace


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=json_values, reward=st.floats(-1e6, 1e6, allow_nan=False))
def test_a_written_trace_reads_back_equal(
    database_url: str, content: object, reward: float
) -> None:
    store = TraceStore(database_url)
    try:
        trace = asyncio.run(record(SessionTracer(store), "s1", content, reward))
        assert store.flush(10)
        loaded = store.load_session("s1")
        assert loaded == trace
        assert loaded.to_json() == json.loads(json.dumps(trace.to_json()))
        assert store.write_errors == 0
    finally:
        store.close()


def test_usage_naming_of_both_vendors() -> None:
    openai = LLMUsage.from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 3,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 4},
        }
    )
    anthropic = LLMUsage.from_anthropic(
        {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 4}
    )
    for usage in (openai, anthropic):
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (10, 3, 13)
        assert usage.cache_read_input_tokens == 4


@given(st.floats(min_value=0, max_value=4e9), st.floats(min_value=0, max_value=600))
def test_a_chat_completion_takes_unix_seconds_as_time_time_gives_them(
    started: float, took: float
) -> None:
    session = SessionTracer().start("unix-seconds")
    with session.timestep("t"):
        event = session.record_chat_completion(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            {"choices": [{"message": {"role": "assistant", "content": "yo"}}]},
            started_at=started,
            completed_at=started + took,
        )
    (call,) = event.call_records
    assert call.started_at == datetime.fromtimestamp(started, tz=UTC)
    assert call.latency_ms == pytest.approx(took * 1000, abs=0.002)  # microseconds kept
    with pytest.raises(ValueError, match="finite Unix seconds"):
        session.record_chat_completion({}, {}, started_at=float("nan"), completed_at=1.0)


def test_list_filters_and_rewrites_of_the_same_session(database_url: str) -> None:
    store = TraceStore(database_url)
    tracer = SessionTracer(store)
    try:
        for i in range(5):
            asyncio.run(record(tracer, f"s{i}", {"i": i}, float(i) / 4))
        asyncio.run(record(tracer, "s0", "again", 0.9))  # a retried rollout replaces its session
        assert store.flush(10)
        sessions = store.list_sessions()
        assert sorted(s["session_id"] for s in sessions) == [f"s{i}" for i in range(5)]
        assert {s["session_id"] for s in store.list_sessions(min_reward=0.5)} == {
            "s0",
            "s2",
            "s3",
            "s4",
        }
        assert store.list_sessions(model="nope") == []
        assert len(store.list_sessions(model="m1", limit=2)) == 2
        assert store.load_session("s0").outcome_reward.total_reward == 0.9
        assert store.load_session("missing") is None
        assert [t.session_id for t in store.iter_sessions(page=2)] == [
            s["session_id"] for s in sessions
        ]
        assert [t.session_id for t in store.iter_sessions(min_reward=0.5, page=1)] == [
            s["session_id"] for s in sessions if s["outcome_reward"] >= 0.5
        ]
        with store.database.reading() as connection:
            rewards = connection.query("SELECT total_reward FROM outcome_rewards")
        assert len(rewards) == 5  # the rewrite left no row of the earlier s0 behind
        assert all(type(row["total_reward"]) is float for row in rewards)  # REAL, not INTEGER
    finally:
        store.close()


def test_an_unwritable_store_counts_and_logs_its_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "traces"
    store = TraceStore(directory / "t.db")
    tracer = SessionTracer(store)
    try:
        asyncio.run(record(tracer, "ok", 1, 1.0))
        assert store.flush(10) and store.write_errors == 0
        shutil.rmtree(directory)
        directory.write_text("a file where the trace directory was")
        asyncio.run(record(tracer, "lost", 2, 0.0))
        store.flush(10)
        assert store.write_errors == 1 and store.queued == 0
        assert any(
            "not written" in r.getMessage() for r in caplog.records if r.levelname == "WARNING"
        )
        assert store.written == 1  # the first session; the second was counted as lost
    finally:
        store.close()


def trace_with(session_id: str, *, tokens: int = 7, text: str = "fine") -> SessionTrace:
    tracer = SessionTracer()
    session = tracer.start(session_id)
    with session.timestep("t"):
        session.record_message(text, "observation")
        session.record_chat_completion(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            {
                "choices": [{"message": {"role": "assistant", "content": "yo"}}],
                "usage": {"prompt_tokens": tokens, "completion_tokens": 1},
            },
            started_at=datetime.now(UTC),
            completed_at=datetime.now(UTC),
        )
    session.record_outcome_reward(1.0)
    return session.trace


def test_one_bad_session_never_drops_its_batch(database_url: str) -> None:
    """Sessions that share a group commit with a session that cannot be stored are stored;
    the bad one alone is refused, counted, and answered as its own error."""
    store = TraceStore(database_url)

    async def scenario() -> list[BaseException | None]:
        traces = [trace_with(f"good-{i}") for i in range(60)]
        traces.insert(30, trace_with("bad", text="\ud800 a lone surrogate"))
        traces.insert(10, trace_with("absurd", tokens=10**30))  # past SQLite's 64-bit INTEGER
        return await asyncio.gather(*(store.write(t) for t in traces), return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
        assert sum(isinstance(o, BaseException) for o in outcomes) == 1
        stored = {s["session_id"] for s in store.list_sessions(limit=100)}
        assert stored == {f"good-{i}" for i in range(60)} | {"absurd"}
        absurd = store.load_session("absurd")
        assert absurd is not None
        assert absurd.lm_events()[0].input_tokens == 10**30  # the payload keeps it whole
        with store.database.reading() as connection:
            (row,) = connection.query(
                "SELECT input_tokens FROM events WHERE session_id = ? AND event_type = 'cais'",
                ["absurd"],
            )
        assert row["input_tokens"] is None  # past 64 bits: NULL in its column
        assert store.write_errors == 1 and store.health()["last_error"]
    finally:
        store.close()


SFT_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys, json
from datetime import UTC, datetime
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full disk: writes fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
from synth_ai.tracing_v3 import LLMCallRecord, LLMMessage, SFTWriter
writer = SFTWriter(sys.argv[1])
for i in range(40):
    now = datetime.now(UTC)
    writer.write(LLMCallRecord(
        call_id=str(i), model_name="m", started_at=now, completed_at=now,
        request_messages=[LLMMessage(role="user", content="q" * (i * 7 % 90))],
        output_messages=[LLMMessage(role="assistant", content="a" * 30)],
    ))
    writer.flush(10)
writer.close()
print(writer.write_errors)
"""


def test_sft_lines_are_whole_or_absent_when_the_disk_fills(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", SFT_UNDER_A_FILE_SIZE_LIMIT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(done.stdout.strip()) > 0  # the limit was really hit
    text = (tmp_path / "sft_examples.jsonl").read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines and all(json.loads(line)["messages"] for line in lines)


def test_an_acknowledged_session_is_readable_at_once(database_url: str) -> None:
    """`write` answers after the commit: another reader (its own connections), looking the
    moment each of many concurrent writes answers, finds that session whole."""
    store = TraceStore(database_url)
    reader = TraceReader(database_url)

    async def scenario() -> list[SessionTrace | None]:
        async def one(i: int) -> SessionTrace | None:
            await store.write(trace_with(f"ack-{i}", tokens=i))
            return await asyncio.to_thread(reader.load_session, f"ack-{i}")

        return await asyncio.gather(*(one(i) for i in range(80)))

    try:
        loaded = asyncio.run(scenario())
        assert [t.lm_events()[0].input_tokens if t else None for t in loaded] == list(range(80))
        assert store.written == 80 and store.queued == 0
    finally:
        reader.close()
        store.close()


def test_sft_export_reads_whole_sessions_back_from_either_engine(
    database_url: str, tmp_path: Path
) -> None:
    tracer_store = TraceStore(database_url)
    tracer = SessionTracer(tracer_store)
    try:
        written = [
            asyncio.run(record(tracer, f"sft-{i}", {"i": i}, reward))
            for i, reward in enumerate([0.0, 0.5, 1.0])
        ]
        assert tracer_store.flush(10)
    finally:
        tracer_store.close()
    out = tmp_path / "sft.jsonl"
    with TraceReader(database_url) as reader:
        count = write_sft_jsonl(reader.iter_sessions(min_reward=0.5), out, min_reward=0.5)
    expected = [example for trace in written[1:] for example in session_examples(trace)]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert count == 2 and sorted(lines, key=json.dumps) == sorted(expected, key=json.dumps)
    assert lines[0]["messages"][-1]["tool_calls"][0]["function"]["arguments"] == '{"a": "4"}'


def test_a_trace_file_from_before_versioned_schemas_opens_reads_and_writes(
    tmp_path: Path,
) -> None:
    """Files made before the store recorded its schema version (the same tables, no
    `synth_schema`) are read as they are, and written to as version 1."""
    path = tmp_path / "old.db"
    store = TraceStore(path)
    try:
        asyncio.run(store.write(trace_with("old")))
    finally:
        store.close()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("DROP TABLE synth_schema")
    connection.close()
    assert TraceReader(path).load_session("old") is not None
    store = TraceStore(path)
    try:
        asyncio.run(store.write(trace_with("new")))
        assert {s["session_id"] for s in store.list_sessions()} == {"old", "new"}
    finally:
        store.close()
    connection = sqlite3.connect(path)
    versions = connection.execute("SELECT component, version FROM synth_schema").fetchall()
    connection.close()
    assert versions == [("traces", 1)]


def test_a_lost_postgres_connection_fails_its_batch_then_the_writer_reconnects(
    postgres_url: str,
) -> None:
    """The server ending the writer's connection is an outage, not a bad session: the write
    in flight is refused (never acknowledged), health says so, and the next write reconnects."""
    import psycopg

    store = TraceStore(postgres_url)

    def end_other_connections() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert ended and all(row[0] for row in ended)

    try:
        asyncio.run(store.write(trace_with("before")))
        end_other_connections()
        with pytest.raises(StorageOutage):
            asyncio.run(store.write(trace_with("lost")))
        assert store.health()["healthy"] is False and store.write_errors == 1
        asyncio.run(store.write(trace_with("after")))
        assert store.health()["healthy"] is True
        assert {s["session_id"] for s in store.list_sessions()} == {"before", "after"}
    finally:
        store.close()
