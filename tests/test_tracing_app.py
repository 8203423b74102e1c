"""Tracing wired into served task apps: sessions per rollout, trace forms, spans, SFT lines."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from synth_ai.examples.math_task_app import build_config
from synth_ai.task import TaskAppClient, create_task_app, serve_in_background
from synth_ai.tracing_v3 import SessionTrace, TraceReader, TraceStore

from .conftest import KEY, InProcess

HEADERS = {"X-API-Key": KEY}
GOLDEN = Path(__file__).parent / "golden" / "math_sft_seed0.jsonl"


def math_app(**overrides: Any) -> Starlette:
    config = build_config()
    for name, value in overrides.items():
        setattr(config, name, value)
    return create_task_app(config)


def body(seed: int, policy_url: str, **record: Any) -> dict[str, Any]:
    return {
        "trace_correlation_id": f"cid-{seed}",
        "env": {"seed": seed},
        "policy": {"config": {"model": "offline-policy", "inference_url": policy_url}},
        "record": record,
    }


async def wait_drained(client: httpx.AsyncClient) -> dict[str, Any]:
    """Poll /health until the trace writer's queue is empty (bounded, no sleeps)."""
    for _ in range(20_000):
        tracing = (await client.get("/health")).json()["tracing"]
        if tracing["queued"] == 0:
            return tracing
    raise AssertionError("trace queue never drained")


def test_200_concurrent_rollouts_leave_200_complete_sessions(
    tmp_path: Path, offline_policy_url: str
) -> None:
    """A 200 means the session is committed: a reader looking right after the answers, while
    the server still runs, finds every one of them."""
    db = tmp_path / "traces.db"

    async def run(url: str) -> dict[str, Any]:
        async with TaskAppClient(url, KEY) as client:
            responses = await asyncio.gather(
                *(client.rollout(body(seed, offline_policy_url)) for seed in range(200))
            )
        assert all(r.metrics.outcome_score == 1.0 for r in responses)
        assert all(r.pipeline_metadata["trace_stored"] is True for r in responses)
        reader = TraceReader(db)
        listed = await asyncio.to_thread(reader.list_sessions, limit=500)
        assert sorted(s["session_id"] for s in listed) == sorted(f"cid-{i}" for i in range(200))
        async with httpx.AsyncClient(base_url=url, headers=HEADERS) as raw:
            return (await raw.get("/health")).json()["tracing"]

    with serve_in_background(math_app(tracing=True, trace_db=db)) as url:
        tracing = asyncio.run(run(url))
    assert tracing == {
        "enabled": True,
        "healthy": True,
        "db": str(db),
        "written": 200,
        "write_errors": 0,
        "queued": 0,
        "last_error": None,
        "last_error_at": None,
        "sft_output_dir": None,
        "sft_write_errors": 0,
    }
    store = TraceStore(db)
    try:
        one = store.load_session("cid-7")
        assert one is not None and one.outcome_reward.total_reward == 1.0
        assert [e.event_type for e in one.event_history] == ["cais", "environment"]
        assert one.session_time_steps[0].events == one.event_history
        assert one.lm_events()[0].call_records[0].usage.input_tokens > 0
    finally:
        store.close()


def test_an_unwritable_store_keeps_rollouts_answering(
    tmp_path: Path, offline_policy_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Rollouts still answer 200, each marked `trace_stored: false` with the reason; /health
    says tracing is unhealthy with the count and last error; the log says so once, not per
    rollout; and once the directory is writable again, traces are stored again."""
    directory = tmp_path / "traces"

    async def run(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
            first = await client.post("/rollout", json=body(1, offline_policy_url))
            assert first.status_code == 200
            assert first.json()["pipeline_metadata"]["trace_stored"] is True
            shutil.rmtree(directory)
            directory.write_text("the disk went away")
            for seed in range(2, 12):
                response = await client.post("/rollout", json=body(seed, offline_policy_url))
                assert response.status_code == 200
                meta = response.json()["pipeline_metadata"]
                assert meta["trace_stored"] is False and meta["trace_error"]
            tracing = (await client.get("/health")).json()["tracing"]
            assert tracing["healthy"] is False and tracing["write_errors"] == 10
            assert tracing["last_error"]
            directory.unlink()
            again = await client.post("/rollout", json=body(20, offline_policy_url))
            assert again.json()["pipeline_metadata"]["trace_stored"] is True
            assert (await client.get("/health")).json()["tracing"]["healthy"] is True

    app = math_app(tracing=True, trace_db=directory / "t.db")
    with (
        caplog.at_level(logging.WARNING, logger="synth_ai.batch_writer"),
        serve_in_background(app) as url,
    ):
        asyncio.run(run(url))
    warnings = [r for r in caplog.records if "not written" in r.getMessage()]
    assert len(warnings) == 1  # once per interval, not once per rollout


def test_an_unopenable_store_never_fails_a_rollout(tmp_path: Path, offline_policy_url: str) -> None:
    """Opening the store happens on the writer, never on the request: a trace path under a
    file answers 200 from the very first rollout."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    with serve_in_background(math_app(tracing=True, trace_db=blocker / "v3" / "t.db")) as url:
        response = httpx.post(f"{url}/rollout", json=body(1, offline_policy_url), headers=HEADERS)
        assert response.status_code == 200, response.text
        assert response.json()["pipeline_metadata"]["trace_stored"] is False
        health = httpx.get(f"{url}/health", headers=HEADERS).json()
        assert health["tracing"]["healthy"] is False


@pytest.mark.parametrize("tracing", [True, False])
def test_trace_forms_in_the_response(
    tmp_path: Path, offline_policy_url: str, tracing: bool
) -> None:
    client = InProcess(math_app(tracing=tracing, trace_db=tmp_path / "t.db"))
    structured = client.post(
        "/rollout",
        json=body(3, offline_policy_url, return_trace=True, trace_format="structured"),
        headers=HEADERS,
    ).json()["trace"]
    assert structured["version"] == 3
    session = SessionTrace.model_validate(structured["session_trace"])
    assert session.session_id == "cid-3"
    assert session.outcome_reward is not None and session.outcome_reward.total_reward == 1.0
    compact = client.post(
        "/rollout", json=body(3, offline_policy_url, return_trace=True), headers=HEADERS
    ).json()["trace"]
    assert compact["format"] == "compact" and compact["outcome_reward"] == 1.0
    assert [e["event_type"] for e in compact["timesteps"][0]["events"]] == ["cais", "environment"]
    full = client.post(
        "/rollout",
        json=body(3, offline_policy_url, return_trace=True, trace_format="full"),
        headers=HEADERS,
    ).json()["trace"]
    assert full["format"] == "full" and full["session_id"] == "cid-3"
    untraced = client.post("/rollout", json=body(3, offline_policy_url), headers=HEADERS).json()
    assert untraced["trace"] is None


def test_spans_on_a_private_provider(offline_policy_url: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    global_provider = trace.get_tracer_provider()
    client = InProcess(math_app(tracing=False, tracer_provider=provider))
    client.post("/rollout", json=body(4, offline_policy_url, return_trace=True), headers=HEADERS)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"rollout", "chat offline-policy"}
    rollout, chat = spans["rollout"], spans["chat offline-policy"]
    assert chat.parent is not None and chat.parent.span_id == rollout.context.span_id
    assert chat.context.trace_id == rollout.context.trace_id
    assert chat.kind == trace.SpanKind.CLIENT
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "offline-policy"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chat.start_time <= chat.end_time
    assert rollout.attributes["synth_ai.session_id"] == "cid-4"
    assert rollout.attributes["synth_ai.outcome_reward"] == 1.0
    assert trace.get_tracer_provider() is global_provider


def test_spans_leave_over_otlp_when_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline_policy_url: str
) -> None:
    received: list[bytes] = []

    async def collect(request: Request) -> Response:
        received.append(await request.body())
        return Response(b"", media_type="application/x-protobuf")

    collector = Starlette(routes=[Route("/v1/traces", collect, methods=["POST"])])
    with serve_in_background(collector) as collector_url:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url)
        app = math_app(tracing=True, trace_db=tmp_path / "t.db")
        with serve_in_background(app) as url:
            httpx.post(f"{url}/rollout", json=body(5, offline_policy_url), headers=HEADERS)
        # the app's shutdown flushed its span processor to the collector
    assert received and b"chat offline-policy" in b"".join(received)


def normalise(line: str) -> str:
    return re.sub(r"call_offline_\d+", "call_offline_N", line)


def assert_openai_chat_format(example: dict[str, Any]) -> None:
    assert set(example) <= {"messages", "tools", "parallel_tool_calls"}
    roles = [m["role"] for m in example["messages"]]
    assert set(roles) <= {"system", "user", "assistant", "tool"} and roles[-1] == "assistant"
    for message in example["messages"]:
        for call in message.get("tool_calls", []):
            assert call["type"] == "function"
            assert isinstance(call["function"]["arguments"], str)
            json.loads(call["function"]["arguments"])
    for tool in example.get("tools", []):
        assert tool["type"] == "function" and tool["function"]["name"]


def test_sft_lines_are_written_per_call_and_match_the_golden_file(
    tmp_path: Path, offline_policy_url: str
) -> None:
    sft_dir = tmp_path / "sft"
    app = math_app(tracing=True, trace_db=tmp_path / "t.db", sft_output_dir=sft_dir)
    with serve_in_background(app) as url:
        for seed in range(3):
            httpx.post(f"{url}/rollout", json=body(seed, offline_policy_url), headers=HEADERS)
    lines = (sft_dir / "sft_examples.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert_openai_chat_format(json.loads(line))
    first = next(line for line in lines if "Compute 12 + 86 * 8." in line)
    assert normalise(first) == GOLDEN.read_text().strip()


SERVE_UNTRACED = """
import sys
from synth_ai.offline_policy import create_offline_policy_app
from synth_ai.task import create_task_app, get_task_app, serve_in_background
import httpx  # after the framework, as in `synth-ai serve` and the Modal entry
config = get_task_app("math").config_factory()
config.tracing = False
with serve_in_background(create_offline_policy_app()) as policy, \\
        serve_in_background(create_task_app(config)) as url:
    body = {"run_id": "r", "env": {"seed": 1},
            "policy": {"config": {"inference_url": policy}}}
    answer = httpx.post(url + "/rollout", json=body, headers={"X-API-Key": sys.argv[1]})
    assert answer.status_code == 200, answer.text
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in
                      ("sqlite3", "opentelemetry", "psycopg", "psycopg_pool", "rich",
                       "pygments"))))
"""


def test_serving_untraced_loads_neither_the_store_nor_opentelemetry() -> None:
    """Not even with a PostgreSQL store named: tracing off loads no driver, and no terminal
    UI (rich, pygments) either."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKAPP_"))}
    env["TASKAPP_TRACE_DB"] = "postgresql://nobody@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, "-c", SERVE_UNTRACED, KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == ""
