"""How `synth-ai traces` shows sessions to people: a session as a transcript (its turns, tool
calls, rewards, with ISO times), and the rows of `traces list`.

The transcript is built by the trace viewer's `transcript()` (a chat's history resent on every
call is shown once), then cut for a terminal: each text to `max_chars`, tool-call arguments on
one line.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from synth_ai.task.access_log import iso_utc
from synth_ai.tracing_v3 import SessionTrace

INDENT = "    "


UNSET = {("achievements_count", 0), ("total_steps", 0)}
"""Outcome fields at the value they have when the app never set them: not shown."""


def iso_text(value: Any) -> str:
    """A stored time (ISO text or Unix seconds) as ISO 8601 UTC to the millisecond."""
    if isinstance(value, int | float):
        return iso_utc(value)
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_utc(moment.timestamp())


def trim(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` (0: whole), saying how much was left out."""
    text = text.strip()
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    return f"{text[:max_chars].rstrip()} … (+{len(text) - max_chars} chars)"


def _compact(text: str) -> str:
    """JSON (an observation, a state) on one line; any other text as it is."""
    if text[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(text), ensure_ascii=False)
        except ValueError:
            pass
    return text


def _block(head: str, text: str, max_chars: int, depth: int = 2) -> list[str]:
    """`head: text` at `depth`, its continuation lines indented under it."""
    lines = trim(_compact(text), max_chars).splitlines() or [""]
    pad = INDENT * depth
    return [f"{pad}{head}: {lines[0]}", *(f"{pad}{INDENT}{line}" for line in lines[1:])]


def _arguments(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        return arguments


def _message_lines(message: dict[str, Any], max_chars: int) -> list[str]:
    role = message["role"] + (f" ({message['name']})" if message.get("name") else "")
    lines = _block(role, message["content"], max_chars) if message["content"] else []
    for call in message["tool_calls"]:
        shown = trim(f"{call['name']}({_arguments(call['arguments'])})", max_chars)
        lines.append(f"{INDENT * 2}{role} → tool call {shown}")
    return lines


def _rewards(item: dict[str, Any]) -> list[str]:
    return [
        f"{INDENT * 2}event reward {r['value']:g}"
        + "".join(f" {k}={r[k]}" for k in ("type", "key", "source") if r.get(k))
        for r in item.get("rewards", [])
    ]


def _item_lines(item: dict[str, Any], max_chars: int) -> list[str]:
    stamp = f"{INDENT}{iso_text(item['time'])}"
    kind = item["kind"]
    if kind == "message":
        return _block(f"{iso_text(item['time'])} {item['type']}", item["content"], max_chars, 1)
    if kind == "llm":
        tokens = item["tokens"]["total"]
        latency = f"{item['latency_ms']:.0f} ms" if item.get("latency_ms") is not None else "-"
        lines = [f"{stamp} model call {item['model'] or '?'} ({latency}, {tokens or 0} tokens)"]
        for call in item["calls"]:
            if call["earlier_messages"]:
                lines.append(f"{INDENT * 2}({call['earlier_messages']} earlier message(s))")
            for message in [*call["request"], *call["response"]]:
                lines.extend(_message_lines(message, max_chars))
        return lines + _rewards(item)
    if kind == "environment":
        ended = " terminated" if item["terminated"] else " truncated" if item["truncated"] else ""
        reward = "-" if item["reward"] is None else f"{item['reward']:g}"
        lines = [f"{stamp} environment reward {reward}{ended}"]
        if item["state"]:
            lines.extend(_block("state", item["state"], max_chars))
        return lines + _rewards(item)
    return [f"{stamp} {kind}", *_block("actions", item.get("actions", ""), max_chars)]


def transcript_lines(trace: SessionTrace, max_chars: int = 400) -> list[str]:
    """A session for a terminal: summary, each step's messages, model calls (with their tool
    calls) and environment results in time order, then the outcome reward."""
    from synth_ai.ui.transcript import transcript

    view = transcript(trace)
    outcome = view["outcome"]
    lines = [
        f"session {view['session_id']}  created {iso_text(trace.created_at)}",
        f"{INDENT}outcome reward {_number(view['reward'])}  models: "
        f"{', '.join(view['models']) or '-'}  tokens: {view['tokens']}",
    ]
    if trace.metadata:
        lines.extend(_block("metadata", json.dumps(trace.metadata, default=str), max_chars, 1))
    for step in view["steps"]:
        took = f"  {step['duration_s']:.3f} s" if step["duration_s"] is not None else ""
        lines.append(
            f"step {step['index']} {step['step_id']} (turn {step['turn']})  "
            f"{iso_text(step['started_at'])}{took}  reward {_number(step['reward'])}"
        )
        for item in step["items"]:
            lines.extend(_item_lines(item, max_chars))
    if view["outside_steps"]:
        lines.append("outside any step")
        for item in view["outside_steps"]:
            lines.extend(_item_lines(item, max_chars))
    if outcome:
        details = {
            k: v
            for k, v in outcome.items()
            if k != "total_reward" and v not in ({}, None) and (k, v) not in UNSET
        }
        lines.append(
            f"outcome reward {_number(outcome['total_reward'])}"
            + (f"  {json.dumps(details, default=str)}" if details else "")
        )
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def session_row(row: dict[str, Any]) -> dict[str, Any]:
    """A `traces list` row with its time in ISO 8601 UTC."""
    return {**row, "created_at": iso_text(row["created_at"])}
