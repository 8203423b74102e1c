"""The trace viewer: its API on each engine (list with reward, models, tokens and duration;
filters; a session as a transcript; SFT export of a filter; the operator's key only), and the
page in a real browser against a real `synth-ai traces serve`."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.task import serve_in_background
from synth_ai.tracing_v3 import SessionTracer, TraceReader, TraceStore, write_sft_jsonl
from synth_ai.ui import create_traces_app

from .browser import Watched, chromium, screenshots  # noqa: F401  (fixtures)
from .conftest import KEY
from .processes import start_server, stop_server

SESSIONS = {"s-good": ("m-large", 1.0), "s-mid": ("m-large", 0.5), "s-bad": ("m-small", 0.0)}
SYSTEM = {"role": "system", "content": "Use the calculator."}
QUESTION = {"role": "user", "content": "What is 2+2?"}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "t1", "function": {"name": "calculator", "arguments": '{"expression":"2+2"}'}}
    ],
}
TOOLS = [{"type": "function", "function": {"name": "calculator"}}]


async def record(tracer: SessionTracer, session_id: str, model: str, reward: float) -> None:
    """Two turns: a tool call, then the answer; the environment rewards the second."""
    started = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    async with tracer.session(session_id, {"seed": 4}) as session:
        async with session.timestep("turn-0"):
            session.record_message("What is 2+2?", "observation")
            session.record_chat_completion(
                {"model": model, "messages": [SYSTEM, QUESTION], "tools": TOOLS},
                {"id": f"{session_id}-1", "choices": [{"message": CALL}], "usage": usage},
                started_at=started,
                completed_at=started + timedelta(milliseconds=300),
            )
            session.record_environment(0.0)
        async with session.timestep("turn-1"):
            tool = {"role": "tool", "tool_call_id": "t1", "content": "4"}
            answer = {"role": "assistant", "content": "The answer is 4."}
            session.record_chat_completion(
                {"model": model, "messages": [SYSTEM, QUESTION, CALL, tool], "tools": TOOLS},
                {"id": f"{session_id}-2", "choices": [{"message": answer}], "usage": usage},
                started_at=started + timedelta(seconds=1),
                completed_at=started + timedelta(seconds=1, milliseconds=200),
            )
            session.record_environment(reward, terminated=True, state_after={"solved": True})
            session.record_event_reward(
                len(session.trace.event_history) - 1, 0.25, key="format", source="grader"
            )
        session.record_outcome_reward(reward)


def fill(url: str) -> None:
    """Record the sessions (on a thread of its own: playwright's loop may own this one)."""
    store = TraceStore(url)
    try:
        tracer = SessionTracer(store)
        with ThreadPoolExecutor(1) as pool:
            for session_id, (model, reward) in SESSIONS.items():
                pool.submit(asyncio.run, record(tracer, session_id, model, reward)).result()
        assert store.flush(10)
    finally:
        store.close()


def expected_export(url: str, tmp_path: Path, **filters: Any) -> str:
    out = tmp_path / "expected.jsonl"
    with TraceReader(url) as reader:
        write_sft_jsonl(reader.iter_sessions(**filters), out, **filters)
    return out.read_text()


def test_the_viewer_api_lists_filters_renders_and_exports(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(database_url)
    monkeypatch.setenv("SYNTH_JOBS_TENANT_KEYS", "acme:acme-key-8a7sd6f5")
    key = {"X-API-Key": KEY}
    with serve_in_background(create_traces_app(database_url)) as url:
        listed = httpx.get(f"{url}/api/traces/sessions", headers=key).json()["sessions"]
        assert {s["session_id"] for s in listed} == set(SESSIONS)
        good = next(s for s in listed if s["session_id"] == "s-good")
        assert (good["reward"], good["models"], good["tokens"], good["steps"]) == (
            1.0,
            ["m-large"],
            50,
            2,
        )
        assert good["duration_s"] is not None and good["duration_s"] >= 0
        filtered = httpx.get(
            f"{url}/api/traces/sessions",
            params={"min_reward": 0.5, "model": "m-large"},
            headers=key,
        ).json()["sessions"]
        assert sorted(s["session_id"] for s in filtered) == ["s-good", "s-mid"]
        models = httpx.get(f"{url}/api/traces/models", headers=key).json()["models"]
        assert models == ["m-large", "m-small"]

        view = httpx.get(f"{url}/api/traces/sessions/s-good", headers=key).json()
        assert view["reward"] == 1.0 and view["tokens"] == 50
        first, second = view["steps"]
        kinds = [item["kind"] for item in first["items"]]
        assert kinds == ["message", "llm", "environment"]
        call = first["items"][1]["calls"][0]
        assert [m["role"] for m in call["request"]] == ["system", "user"]
        (tool_call,) = call["response"][0]["tool_calls"]
        assert tool_call["name"] == "calculator"
        assert json.loads(tool_call["arguments"]) == {"expression": "2+2"}
        again = second["items"][0]["calls"][0]
        # the second call resends the conversation: only what is new is shown
        assert again["earlier_messages"] == 3 and [m["role"] for m in again["request"]] == ["tool"]
        assert again["response"][0]["content"] == "The answer is 4."
        assert second["reward"] == 1.25  # the environment's 1.0 plus the event reward 0.25
        assert second["items"][-1]["rewards"][0]["key"] == "format"
        assert first["duration_s"] is not None

        exported = httpx.get(
            f"{url}/api/traces/export.jsonl", params={"min_reward": 0.5}, headers=key
        )
        assert exported.status_code == 200
        assert exported.text == expected_export(database_url, tmp_path, min_reward=0.5)
        assert len(exported.text.splitlines()) == 4  # two sessions, two calls each

        refusals = {
            "unknown session": httpx.get(f"{url}/api/traces/sessions/nope", headers=key),
            "no key": httpx.get(f"{url}/api/traces/sessions"),
            "a tenant's key": httpx.get(
                f"{url}/api/traces/sessions", headers={"X-API-Key": "acme-key-8a7sd6f5"}
            ),
            "bad filter": httpx.get(
                f"{url}/api/traces/sessions", params={"min_reward": "nan"}, headers=key
            ),
        }
        codes = {why: answer.status_code for why, answer in refusals.items()}
        assert codes == {
            "unknown session": 404,
            "no key": 401,
            "a tenant's key": 403,
            "bad filter": 422,
        }
        tenant = httpx.post(f"{url}/ui/api/signin", json={"key": "acme-key-8a7sd6f5"})
        assert tenant.status_code == 401  # only the operator signs in to traces


def test_traces_serve_needs_the_operator_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVIRONMENT_API_KEY")
    fill(str(tmp_path / "traces.db"))
    result = CliRunner().invoke(main, ["traces", "serve", "--db", str(tmp_path / "traces.db")])
    assert result.exit_code == 1 and "ENVIRONMENT_API_KEY" in result.output


def test_the_viewer_in_a_browser(
    tmp_path: Path,
    chromium: Any,  # noqa: F811
    screenshots: Path,  # noqa: F811
) -> None:
    db = str(tmp_path / "traces.db")
    fill(db)
    process, url, output = start_server(["traces", "serve", "--db", db])
    try:
        link = next(line.strip() for line in output if "/ui/#login=" in line)
        assert link.startswith(f"{url}/ui/#login=")
        context = chromium.new_context(accept_downloads=True)
        watched = Watched(context)
        page = watched.page
        page.goto(link)
        page.wait_for_selector("tr[data-session-id='s-bad']", timeout=15_000)
        assert page.locator("tr[data-session-id]").count() == 3
        good = page.inner_text("tr[data-session-id='s-good']")
        assert "m-large" in good and "50" in good and "1" in good
        page.screenshot(path=screenshots / "traces-list.png", full_page=True)

        page.fill("#min-reward", "0.5")
        page.select_option("#model", "m-large")
        page.click("button[type=submit]")
        page.wait_for_selector("tr[data-session-id='s-good']")
        page.wait_for_function("() => document.getElementById('count').textContent")
        shown = page.eval_on_selector_all(
            "tr[data-session-id]", "rows => rows.map(r => r.dataset.sessionId)"
        )
        assert sorted(shown) == ["s-good", "s-mid"]
        with page.expect_download() as download:
            page.click("#export")
        exported = Path(download.value.path()).read_text()
        assert exported == expected_export(db, tmp_path, min_reward=0.5, model="m-large")

        page.click("a[href='session.html?id=s-good']")
        page.wait_for_selector("section.step")
        transcript = page.inner_text("#transcript")
        for text in ("Step 0", "Step 1", "tool call calculator", '"expression": "2+2"'):
            assert text in transcript, text
        assert "The answer is 4." in transcript and "reward 0.25 (format)" in transcript
        assert "3 earlier message(s)" in transcript
        assert "1" in page.inner_text("#summary")
        page.screenshot(path=screenshots / "traces-session.png", full_page=True)
        assert KEY not in page.content() + page.url + watched.storage()
        assert watched.errors == []
        context.close()
    finally:
        stop_server(process, output)
