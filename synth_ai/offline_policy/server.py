"""An OFFLINE STAND-IN for an LLM vendor: an OpenAI-compatible chat-completions server.

No vendor is reachable where the demo and tests run, so this server answers
`POST /v1/chat/completions` itself. It reads the math problem in the messages, honours the
requested tool schema and `tool_choice`, and answers correctly except at a configurable,
seeded error rate (deterministic per prompt). It is not a model and is never used in
production.

The request's model name picks one of three documented behaviours, so one server stands in for
both models a prompt optimizer calls:
- `offline-reflection` (or gepa's reflection prompt under any name): the reflection stand-in,
  which proposes an instruction from the feedback it is given (`reflection.py`);
- `offline-prompt-sensitive`: the policy whose accuracy depends on what its prompt tells it
  (`lessons.py`);
- any other name: the plain solver above.

A problem it cannot read gets the stand-ins' "cannot answer" reply (`tally.py`), never an empty
answer dressed as one.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .lessons import PROMPT_SENSITIVE_MODEL, as_prompted
from .reflection import (
    REFLECTION_MODEL,
    NotAReflectionRequest,
    is_reflection_request,
    reflection_answer,
)
from .solver import format_answer, solve
from .tally import TALLY_PATH, UNANSWERED_HEADER, Tally, unanswered_message

OFFLINE_MODEL = "offline-policy"
MODELS = (OFFLINE_MODEL, PROMPT_SENSITIVE_MODEL, REFLECTION_MODEL)


def _openai_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error"}}, status_code=status
    )


def _text_of(messages: list[Any]) -> str:
    parts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(parts)


def _chosen_tool(tools: list[Any], tool_choice: Any) -> dict[str, Any] | None:
    functions = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if not functions or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        return next((f for f in functions if f.get("name") == wanted), None)
    return functions[0]


def _argument_name(function: dict[str, Any]) -> str:
    parameters = function.get("parameters") or {}
    required = parameters.get("required") or []
    properties = list((parameters.get("properties") or {}).keys())
    return (required or properties or ["answer"])[0]


def _completion(
    body: dict[str, Any], number: int, message: dict[str, Any], finish: str, asked: str, said: str
) -> JSONResponse:
    """A chat completion; tokens counted as words (a stand-in has no tokenizer)."""
    prompt_tokens = len(asked.split())
    completion_tokens = max(1, len(said.split()))
    return JSONResponse(
        {
            "id": f"chatcmpl-offline-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or OFFLINE_MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "offline-stand-in",
        }
    )


@dataclass(frozen=True, slots=True)
class SeenRequest:
    url: str
    body: dict[str, Any]


class OfflinePolicy:
    """Decides each answer; keeps the last requests it saw (bounded) for inspection."""

    def __init__(
        self, error_rate: float = 0.0, seed: int = 0, history: int = 256, latency_s: float = 0.0
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
        self.latency_s = latency_s
        self.error_rate = error_rate
        self.seed = seed
        self.requests_seen: deque[SeenRequest] = deque(maxlen=history)
        self.tally = Tally()
        self._ids = itertools.count(1)

    def answer(self, text: str) -> str:
        value = solve(text)
        if value is None:
            return ""
        digest = hashlib.sha256(f"{self.seed}\x00{text}".encode()).digest()
        rng = random.Random(digest)
        if rng.random() < self.error_rate:
            value += Fraction(rng.choice([-3, -2, -1, 1, 2, 3]))
        return format_answer(value)

    async def chat_completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _openai_error(400, "The body is not valid JSON.")
        if not isinstance(body, dict):
            return _openai_error(400, "The body must be a JSON object.")
        self.requests_seen.append(SeenRequest(str(request.url), body))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _openai_error(400, "'messages' must be a non-empty list.")
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        text = _text_of(messages)
        number = next(self._ids)
        if is_reflection_request(body.get("model"), text):
            try:
                reply = reflection_answer(text)
            except NotAReflectionRequest as exc:
                return _openai_error(400, str(exc))
            message: dict[str, Any] = {"role": "assistant", "content": reply}
            return _completion(body, number, message, "stop", text, reply)
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        # the latest question first: in a multi-turn conversation that is the one asked now
        problem = _text_of(users[-1:])
        answer = self.answer(problem)
        if not answer:
            problem, answer = text, self.answer(text)
        self.tally.record(request.query_params.get("cid"), bool(answer))
        if not answer:
            response = _completion(body, number, unanswered_message(), "stop", text, "")
            response.headers[UNANSWERED_HEADER] = "1"
            return response
        if body.get("model") == PROMPT_SENSITIVE_MODEL:
            answer = as_prompted(answer, problem, text)
        tool = _chosen_tool(body.get("tools") or [], body.get("tool_choice"))
        if tool is None:
            message = {"role": "assistant", "content": f"\\boxed{{{answer}}}"}
            finish = "stop"
        else:
            arguments = json.dumps({_argument_name(tool): answer})
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_offline_{number}",
                        "type": "function",
                        "function": {"name": tool.get("name"), "arguments": arguments},
                    }
                ],
            }
            finish = "tool_calls"
        return _completion(body, number, message, finish, text, answer)

    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "owned_by": "offline"} for name in MODELS],
            }
        )


def create_offline_policy_app(
    error_rate: float = 0.0, seed: int = 0, latency_s: float = 0.0
) -> Starlette:
    """The offline stand-in as an ASGI app; `app.state.policy` is its `OfflinePolicy`.
    `latency_s`: how long each answer takes (the demo's pace, so a person can watch it)."""
    policy = OfflinePolicy(error_rate=error_rate, seed=seed, latency_s=latency_s)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", policy.chat_completions, methods=["POST"]),
            Route("/chat/completions", policy.chat_completions, methods=["POST"]),
            Route("/v1/models", policy.models, methods=["GET"]),
            Route(TALLY_PATH, policy.tally.route, methods=["POST"]),
        ]
    )
    app.state.policy = policy
    return app
