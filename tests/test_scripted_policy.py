"""The scripted stand-in policy: it answers what the author's script says (a function or
rules), records what it was asked, and says so when it cannot answer; `eval` and `check`
count those calls, and `check` fails a rollout whose every call went unanswered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from synth_ai.cli import main
from synth_ai.offline_policy import (
    UNANSWERED,
    Count,
    Rule,
    ToolCall,
    count_unanswered,
    create_offline_policy_app,
)
from synth_ai.offline_policy.script_file import ScriptFileError, load_script
from synth_ai.offline_policy.tally import UNANSWERED_HEADER, Tally
from synth_ai.scaffold import create_project
from synth_ai.task import create_task_app, serve_in_background
from synth_ai.testing import assert_conforms, serve_scripted_policy

from .conftest import make_config
from .processes import start_server, stop_server

LOOKUP = {"type": "function", "function": {"name": "lookup_stock", "parameters": {}}}
RULES = [
    Rule(r"SKU (\S+)\?", lambda match: ToolCall("lookup_stock", {"sku": match[1]})),
    Rule(r"^\d+$", lambda match: f"there are {match[0]}"),
]


def ask(url: str, messages: list[dict[str, Any]], cid: str = "c1") -> httpx.Response:
    body = {"model": "any", "messages": messages, "tools": [LOOKUP]}
    return httpx.post(f"{url}/chat/completions?cid={cid}", json=body, timeout=10)


def test_rules_answer_tool_calls_and_text_record_the_asking_and_say_what_they_cannot() -> None:
    with serve_scripted_policy(RULES) as policy:
        call = ask(policy.url, [{"role": "user", "content": "How many of SKU A-1?"}])
        message = call.json()["choices"][0]
        assert message["finish_reason"] == "tool_calls"
        function = message["message"]["tool_calls"][0]["function"]
        assert (function["name"], json.loads(function["arguments"])) == (
            "lookup_stock",
            {"sku": "A-1"},
        )
        tool_turn = [
            {"role": "user", "content": "How many of SKU A-1?"},
            message["message"],
            {"role": "tool", "tool_call_id": "x", "content": "42"},
        ]
        assert ask(policy.url, tool_turn).json()["choices"][0]["message"]["content"] == (
            "there are 42"
        )
        lost = ask(policy.url, [{"role": "user", "content": "Hello?"}], cid="c2")
        assert lost.status_code == 200 and lost.headers[UNANSWERED_HEADER] == "1"
        assert lost.json()["choices"][0]["message"] == {"role": "assistant", "content": UNANSWERED}
        assert [c.answered for c in policy.calls] == [True, True, False]
        assert policy.calls[0].tools == [LOOKUP] and policy.calls[1].messages == tool_turn
        assert [c.cid for c in policy.calls] == ["c1", "c1", "c2"] and policy.unanswered == 1
        assert asyncio.run(count_unanswered(policy.url, ["c1", "c2", "c9"])) == Count(3, 1)
        assert asyncio.run(count_unanswered(policy.url, ["c1"])) == Count(2, 0)


def test_a_script_that_raises_or_answers_nonsense_is_named_to_the_app() -> None:
    def broken(messages: Any, tools: Any) -> Any:
        raise LookupError("no such shelf")

    with serve_scripted_policy(broken) as policy:
        answer = ask(policy.url, [{"role": "user", "content": "hi"}])
        assert answer.status_code == 500
        assert "the scripted policy raised LookupError: no such shelf" in answer.text
    with serve_scripted_policy(lambda messages, tools: 42) as policy:
        answer = ask(policy.url, [{"role": "user", "content": "hi"}])
        assert answer.status_code == 500 and "not 42" in answer.text


def test_the_math_stand_in_says_when_it_cannot_read_a_problem() -> None:
    app = create_offline_policy_app()
    with serve_in_background(app) as url:
        lost = ask(f"{url}/v1", [{"role": "user", "content": "lookup_stock for the bolts"}], "m1")
        solved = ask(f"{url}/v1", [{"role": "user", "content": "Compute 2 + 3."}], "m2")
        assert lost.json()["choices"][0]["message"]["content"] == UNANSWERED
        assert "tool_calls" not in lost.json()["choices"][0]["message"]
        assert "5" in solved.text and UNANSWERED_HEADER.lower() not in solved.headers
        assert asyncio.run(count_unanswered(url, ["m1", "m2"])) == Count(2, 1)


def test_a_real_endpoint_is_not_taken_for_a_stand_in() -> None:
    with serve_in_background(create_task_app(make_config())) as url:
        assert asyncio.run(count_unanswered(url, ["c1"])) is None
    assert asyncio.run(count_unanswered("http://127.0.0.1:9", ["c1"])) is None
    assert asyncio.run(count_unanswered("https://api.openai.com/v1", ["c1"])) is None  # not asked


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", None]), st.booleans())))
def test_the_tally_counts_each_cid_and_stays_bounded(calls: list[tuple[str | None, bool]]) -> None:
    tally, small = Tally(limit=10), Tally(limit=2)
    for cid, answered in calls:
        tally.record(cid, answered)
        small.record(cid, answered)
    assert tally.total == Count(len(calls), sum(not answered for _, answered in calls))
    for cid in "abcd":
        mine = [answered for c, answered in calls if c == cid]
        assert tally.of([cid, cid]) == Count(len(mine), mine.count(False))
    assert len(small._by_cid) <= 2 and small.total == tally.total
    last = next((c for c, _ in reversed(calls) if c), None)
    if last is not None:
        assert small.of([last]).calls >= 1


@pytest.fixture
def inventory(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh tool-using app made by `synth-ai init` (a name of its own: apps register)."""
    name = f"stock-{abs(hash(request.node.nodeid)) % 10**8}"
    return create_project(name, tmp_path, requirement="synth-ai")


def app_file(root: Path) -> str:
    return str(root / f"{root.name.replace('-', '_')}.py")


def test_check_counts_unanswered_calls_and_fails_a_rollout_with_no_answer(
    inventory: Path,
) -> None:
    silent = inventory / "silent.py"
    silent.write_text('RULES = [("never matches", "x")]\n')
    failed = CliRunner().invoke(
        main, ["check", app_file(inventory), "--policy-script", str(silent)]
    )
    assert failed.exit_code == 1, failed.output
    assert "could not answer any" in failed.output
    assert (
        "the stand-in policy could not answer 2 of its 2 call(s) "
        "(script the answers: --policy-script FILE)"
    ) in failed.output
    assert "failed: rollout_eval, rollout_rl_cid_rules" in failed.output
    passed = CliRunner().invoke(
        main, ["check", app_file(inventory), "--policy-script", str(inventory / "policy_script.py")]
    )
    assert passed.exit_code == 0, passed.output
    assert "the stand-in policy could not answer 0 of its 4 call(s)" in passed.output
    with pytest.raises(AssertionError, match="could not answer any"):
        assert_conforms(app_file(inventory), script=lambda messages, tools: None)


def test_eval_counts_the_calls_the_stand_in_could_not_answer(
    inventory: Path, tmp_path: Path
) -> None:
    half = inventory / "half.py"
    half.write_text(
        "from synth_ai.testing import ToolCall\n"
        "def policy(messages, tools):\n"
        "    return None if messages[-1]['role'] == 'tool' else ToolCall('lookup_stock', {})\n"
    )
    out = tmp_path / "results.jsonl"
    args = ["eval", app_file(inventory), "--seeds", "0-2", "--policy-script", str(half)]
    ran = CliRunner().invoke(
        main, [*args, "--out", str(out), "--jobs-db", str(tmp_path / "j.db"), "--json"]
    )
    assert "could not answer 3 of 6 call(s)" in ran.output
    document = json.loads(ran.stdout.splitlines()[-1])
    assert document["summary"]["unanswered"] == 3 and document["summary"]["policy_calls"] == 6


def test_policy_serve_script_serves_the_file_and_refuses_what_is_not_a_script(
    tmp_path: Path,
) -> None:
    script = tmp_path / "say.py"
    script.write_text("RULES = [(r'Say (\\w+)', lambda m: m[1].upper())]\n")
    process, url, output = start_server(["policy", "serve", "--script", str(script)])
    try:
        said = ask(f"{url}/v1", [{"role": "user", "content": "Say hello"}])
        assert said.json()["choices"][0]["message"]["content"] == "HELLO"
    finally:
        printed = stop_server(process, output)
    assert "scripted stand-in policy (not an LLM" in printed
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    refused = CliRunner().invoke(main, ["policy", "serve", "--script", str(empty)])
    assert refused.exit_code == 1 and "defines neither policy(messages, tools)" in refused.output
    both = CliRunner().invoke(main, ["policy", "serve", "--offline", "--script", str(script)])
    assert both.exit_code == 2 and "pass --offline or --script FILE" in both.output


def test_a_script_file_with_an_error_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("RULES = [\n  (missing_name, 'x'),\n]\n")
    with pytest.raises(ScriptFileError, match=rf"^{broken}:2: NameError: name 'missing_name'"):
        load_script(broken)
