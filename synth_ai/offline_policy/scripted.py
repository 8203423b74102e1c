"""OFFLINE STAND-IN scripted by the author: a chat-completions server that answers what a
script says, for testing any app (tool-using, multi-turn, any domain) with no LLM.

The script is a function `(messages, tools) -> reply`, or a list of `Rule`s. A reply is text
(a `str`), a `ToolCall` or a list of them, or None: "I cannot answer this", which the server
answers as every stand-in does (`tally.py`), so `eval` and `check` count it. Each call is
recorded (`ScriptedPolicy.calls`, bounded) with what was asked and what was answered.

It is not a model: it says exactly what the script says.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .tally import TALLY_PATH, UNANSWERED_HEADER, Tally, unanswered_message

SCRIPTED_MODEL = "offline-scripted"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call of the tool `name` with `arguments` (a JSON object)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Reply: TypeAlias = str | ToolCall | list[ToolCall] | None
Script: TypeAlias = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Reply]


@dataclass(frozen=True, slots=True)
class Rule:
    """When `pattern` (a regular expression) is found in the latest message that is not the
    assistant's (the user's question, or a tool's result), answer `reply`; a callable reply
    is given the match."""

    pattern: str
    reply: Reply | Callable[[re.Match[str]], Reply]

    def answer(self, text: str) -> tuple[bool, Reply]:
        match = re.search(self.pattern, text)
        if match is None:
            return False, None
        return True, self.reply(match) if callable(self.reply) else self.reply


def latest_text(messages: Sequence[Any]) -> str:
    """The text of the latest message not from the assistant or the system."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") in ("assistant", "system"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def from_rules(rules: Sequence[Rule]) -> Script:
    """A script that answers with the first rule that matches, else cannot answer."""

    def script(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        text = latest_text(messages)
        for rule in rules:
            matched, reply = rule.answer(text)
            if matched:
                return reply
        return None

    return script


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One request: the messages and tools it carried, its cid, and the reply message sent."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    cid: str | None
    reply: dict[str, Any]
    answered: bool


class ScriptError(ValueError):
    """The script answered something that is not a reply."""


def reply_message(reply: Reply, number: int) -> dict[str, Any]:
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}
    calls = [reply] if isinstance(reply, ToolCall) else reply
    if not isinstance(calls, list) or not calls or not all(isinstance(c, ToolCall) for c in calls):
        raise ScriptError(
            f"a script answers text, a ToolCall, a list of ToolCalls or None, not {reply!r:.80}"
        )
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_scripted_{number}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for index, call in enumerate(calls)
        ],
    }


class ScriptedPolicy:
    """Answers each chat completion from the script, records it, tallies the unanswered."""

    def __init__(self, script: Script | Sequence[Rule], history: int = 1024) -> None:
        self.script: Script = script if callable(script) else from_rules(list(script))
        self.calls: deque[ScriptedCall] = deque(maxlen=history)
        self.tally = Tally()
        self._ids = itertools.count(1)

    @property
    def unanswered(self) -> int:
        return self.tally.total.unanswered

    async def chat_completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The body is not valid JSON.")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty list.")
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            return _error(400, "'tools' must be a list.")
        number = next(self._ids)
        try:
            reply = self.script(messages, tools)
            message = unanswered_message() if reply is None else reply_message(reply, number)
        except Exception as exc:  # the author's script: say what it raised, to the app
            return _error(500, f"the scripted policy raised {type(exc).__name__}: {exc}")
        cid = request.query_params.get("cid")
        self.tally.record(cid, reply is not None)
        self.calls.append(ScriptedCall(messages, tools, cid, message, reply is not None))
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        headers = {UNANSWERED_HEADER: "1"} if reply is None else None
        return JSONResponse(
            {
                "id": f"chatcmpl-scripted-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or SCRIPTED_MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "system_fingerprint": "offline-stand-in",
            },
            headers=headers,
        )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error"}}, status_code=status
    )


def create_scripted_policy_app(script: Script | Sequence[Rule]) -> Starlette:
    """The scripted stand-in as an ASGI app; `app.state.policy` is its `ScriptedPolicy`."""
    policy = ScriptedPolicy(script)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", policy.chat_completions, methods=["POST"]),
            Route("/chat/completions", policy.chat_completions, methods=["POST"]),
            Route(TALLY_PATH, policy.tally.route, methods=["POST"]),
        ]
    )
    app.state.policy = policy
    return app
