"""A session trace as the viewer reads it: steps in order, each a transcript of what happened.

Within a step, messages and events are interleaved by time. A model call shows only the request
messages the previous call had not already shown (a chat's history is resent on every call),
then its answer, its tool calls with their arguments, tokens and latency. Rewards (the
environment's and those attached to events) are summed per step. Every text is capped, so one
huge observation cannot make the page unusable.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from synth_ai.tracing_v3 import (
    EnvironmentEvent,
    LLMCallRecord,
    LLMMessage,
    LMCAISEvent,
    RuntimeEvent,
    SessionEventMessage,
    SessionTrace,
)

MAX_TEXT = 20_000


def _cap(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}\n… ({len(text) - MAX_TEXT} more characters)"


def text_of(content: Any) -> str:
    """Content as text: strings as they are, chat content parts joined, anything else JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _cap(content)
    if isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("text"), str) for part in content
    ):
        return _cap("\n".join(part["text"] for part in content))
    return _cap(json.dumps(content, indent=2, ensure_ascii=False, default=str))


def _arguments(arguments: str) -> str:
    """Tool-call arguments pretty-printed when they are JSON (as models usually send them)."""
    try:
        return _cap(json.dumps(json.loads(arguments), indent=2, ensure_ascii=False))
    except ValueError:
        return _cap(arguments)


def _message(message: LLMMessage) -> dict[str, Any]:
    return {
        "role": message.role,
        "name": message.name,
        "content": text_of(message.content),
        "tool_call_id": message.tool_call_id,
        "tool_calls": [
            {"id": call.id, "name": call.name, "arguments": _arguments(call.arguments)}
            for call in message.tool_calls
        ],
    }


def _key(message: LLMMessage) -> str:
    return message.model_dump_json()


class _Calls:
    """Model calls in order, each showing only what the conversation had not shown yet."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def render(self, record: LLMCallRecord) -> dict[str, Any]:
        request = [_key(message) for message in record.request_messages]
        known = 0
        while known < min(len(request), len(self.shown)) and request[known] == self.shown[known]:
            known += 1
        self.shown = request + [_key(message) for message in record.output_messages]
        return {
            "model": record.model_name,
            "provider": record.provider,
            "latency_ms": record.latency_ms,
            "finish_reason": record.finish_reason,
            "earlier_messages": known,
            "request": [_message(m) for m in record.request_messages[known:]],
            "response": [_message(m) for m in record.output_messages],
            "tools": [
                (tool.get("function") or tool).get("name", "?")
                for tool in record.tools or []
                if isinstance(tool, dict)
            ],
            "tokens": record.usage.total_tokens,
        }


def _event(event: Any, calls: _Calls) -> dict[str, Any]:
    item: dict[str, Any] = {"time": event.time_record.event_time}
    if isinstance(event, LMCAISEvent):
        item.update(
            kind="llm",
            model=event.model_name,
            provider=event.provider,
            latency_ms=event.latency_ms,
            tokens={
                "input": event.input_tokens,
                "output": event.output_tokens,
                "total": event.total_tokens,
            },
            cost_usd=event.cost_usd,
            calls=[calls.render(record) for record in event.call_records],
        )
    elif isinstance(event, EnvironmentEvent):
        item.update(
            kind="environment",
            reward=event.reward,
            terminated=event.terminated,
            truncated=event.truncated,
            state=text_of(event.system_state_after) if event.system_state_after else "",
        )
    elif isinstance(event, RuntimeEvent):
        item.update(kind="runtime", actions=text_of(event.actions))
    return item


def _tokens(event: LMCAISEvent) -> int:
    if event.total_tokens is not None:
        return event.total_tokens
    return (event.input_tokens or 0) + (event.output_tokens or 0)


def _session_message(message: SessionEventMessage) -> dict[str, Any]:
    return {
        "kind": "message",
        "time": message.time_record.event_time,
        "type": message.message_type,
        "content": text_of(message.content),
    }


def transcript(trace: SessionTrace) -> dict[str, Any]:
    """The view of one session: its summary, then its steps (and anything outside a step)."""
    rewards: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for reward in trace.event_rewards:
        rewards[reward.event_index].append(
            {
                "value": reward.reward_value,
                "type": reward.reward_type,
                "key": reward.key,
                "source": reward.source,
            }
        )
    index_of = {id(event): index for index, event in enumerate(trace.event_history)}
    calls = _Calls()
    placed: set[int] = set()

    def items(events: list[Any], messages: list[SessionEventMessage]) -> list[dict[str, Any]]:
        timeline: list[tuple[float, int, Any]] = [
            (event.time_record.event_time, index_of.get(id(event), -1), event) for event in events
        ]
        timeline += [(m.time_record.event_time, -1, m) for m in messages]
        rendered = []
        for _, index, thing in sorted(timeline, key=lambda entry: (entry[0], entry[1])):
            placed.add(id(thing))
            if isinstance(thing, SessionEventMessage):
                rendered.append(_session_message(thing))
            else:
                rendered.append({**_event(thing, calls), "rewards": rewards.get(index, [])})
        return rendered

    steps = []
    for step in trace.session_time_steps:
        shown = items(step.events, step.markov_blanket_messages)
        reward = sum(item.get("reward") or 0.0 for item in shown) + sum(
            r["value"] for item in shown for r in item.get("rewards", [])
        )
        completed = step.completed_at
        steps.append(
            {
                "index": step.step_index,
                "step_id": step.step_id,
                "turn": step.turn_number,
                "started_at": step.timestamp.isoformat(),
                "completed_at": completed.isoformat() if completed else None,
                "duration_s": (completed - step.timestamp).total_seconds() if completed else None,
                "reward": reward,
                "items": shown,
            }
        )
    outside = items(
        [e for e in trace.event_history if id(e) not in placed],
        [m for m in trace.markov_blanket_message_history if id(m) not in placed],
    )
    outcome = trace.outcome_reward
    return {
        "session_id": trace.session_id,
        "created_at": trace.created_at.isoformat(),
        "metadata": text_of(trace.metadata) if trace.metadata else "",
        "reward": outcome.total_reward if outcome else None,
        "outcome": outcome.model_dump(mode="json") if outcome else None,
        "models": sorted({e.model_name for e in trace.lm_events() if e.model_name}),
        "tokens": sum(_tokens(e) for e in trace.lm_events()),
        "steps": steps,
        "outside_steps": outside,
    }
