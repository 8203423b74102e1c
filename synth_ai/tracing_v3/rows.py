"""A session trace as table rows, with ids reserved up front so a batch inserts in bulk."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from .models import EnvironmentEvent, LMCAISEvent, SessionTrace

ID_TABLES = ("session_timesteps", "events", "messages", "outcome_rewards", "event_rewards")
INSERT_ORDER = ("session_traces", *ID_TABLES)
_LM_COLUMNS = (
    "model_name",
    "provider",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "latency_ms",
    "span_id",
    "trace_id",
)
COLUMNS: dict[str, tuple[str, ...]] = {
    "session_traces": (
        "session_id",
        "created_at",
        "num_timesteps",
        "num_events",
        "num_messages",
        "metadata",
    ),
    "session_timesteps": (
        "id",
        "session_id",
        "step_id",
        "step_index",
        "turn_number",
        "started_at",
        "completed_at",
        "num_events",
        "num_messages",
        "step_metadata",
    ),
    "events": (
        "id",
        "session_id",
        "timestep_id",
        "event_type",
        "system_instance_id",
        "event_time",
        "message_time",
        *_LM_COLUMNS,
        "reward",
        "terminated",
        "truncated",
        "payload",
    ),
    "messages": (
        "id",
        "session_id",
        "timestep_id",
        "message_type",
        "content",
        "event_time",
        "message_time",
        "payload",
    ),
    "outcome_rewards": (
        "id",
        "session_id",
        "total_reward",
        "achievements_count",
        "total_steps",
        "reward_metadata",
        "created_at",
    ),
    "event_rewards": (
        "id",
        "event_id",
        "session_id",
        "turn_number",
        "reward_value",
        "reward_type",
        "key",
        "annotation",
        "source",
        "created_at",
    ),
}
"""What the store inserts, named here rather than asked of the database: a table made by
other tools may have more columns, which are left to their defaults."""


def id_counts(traces: Iterable[SessionTrace]) -> dict[str, int]:
    """How many ids each table needs for these sessions' rows (what `session_rows` takes)."""
    counts = dict.fromkeys(ID_TABLES, 0)
    for trace in traces:
        counts["session_timesteps"] += len(trace.session_time_steps)
        counts["events"] += len(trace.event_history)
        counts["messages"] += len(trace.markov_blanket_message_history)
        counts["outcome_rewards"] += trace.outcome_reward is not None
        counts["event_rewards"] += len(trace.event_rewards)
    return counts


class ReservedIds:
    """Row ids reserved from the database beforehand, handed out in order per table."""

    def __init__(self, reserved: Mapping[str, list[int]]) -> None:
        self._ids = {table: iter(ids) for table, ids in reserved.items()}

    def next(self, table: str) -> int:
        return next(self._ids[table])


def insert(table: str, rows: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
    """The INSERT for `table` (`?` placeholders), and the rows as its parameters."""
    columns = COLUMNS[table]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return sql, [tuple(row.get(column) for column in columns) for row in rows]


def _column(value: Any) -> Any:
    """A value both engines hold in an integer column: one past 64 bits goes in as NULL there
    (the row's JSON payload keeps it whole), so one absurd count never refuses a session."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return None
    return value


def _text(value: Any) -> str | None:
    """Message content as a column: strings as they are (but NUL, which PostgreSQL text cannot
    hold, as U+FFFD; the payload keeps it whole), anything else as JSON."""
    if not isinstance(value, str):
        return _json(value)
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _owners(items: Sequence[BaseModel], groups: Sequence[Sequence[BaseModel]]) -> list[int | None]:
    """For each item of a history, the index of the group (timestep) holding it, if any.

    Matched by identity (how the tracer builds traces), else by equal content (a trace read
    back from JSON holds equal copies): each item once, the earliest free one first, in time
    linear in the items.
    """
    owners: list[int | None] = [None] * len(items)
    by_identity = {id(item): index for index, item in enumerate(items)}
    unmatched: list[tuple[int, BaseModel]] = []
    for group_index, group in enumerate(groups):
        for member in group:
            index = by_identity.get(id(member))
            if index is not None and owners[index] is None:
                owners[index] = group_index
            else:
                unmatched.append((group_index, member))
    if unmatched:
        free: dict[tuple[type, str], deque[int]] = defaultdict(deque)
        for index, item in enumerate(items):
            if owners[index] is None:
                free[type(item), item.model_dump_json()].append(index)
        for group_index, member in unmatched:
            candidates = free.get((type(member), member.model_dump_json()))
            if candidates:
                owners[candidates.popleft()] = group_index
    return owners


def session_rows(trace: SessionTrace, ids: ReservedIds) -> dict[str, list[dict[str, Any]]]:
    created = trace.created_at.isoformat()
    steps = trace.session_time_steps
    rows: dict[str, list[dict[str, Any]]] = {
        "session_traces": [
            {
                "session_id": trace.session_id,
                "created_at": created,
                "num_timesteps": len(steps),
                "num_events": len(trace.event_history),
                "num_messages": len(trace.markov_blanket_message_history),
                "metadata": _json(trace.metadata),
            }
        ],
        "session_timesteps": [
            {
                "id": ids.next("session_timesteps"),
                "session_id": trace.session_id,
                "step_id": step.step_id,
                "step_index": step.step_index,
                "turn_number": _column(step.turn_number),
                "started_at": step.timestamp.isoformat(),
                "completed_at": step.completed_at.isoformat() if step.completed_at else None,
                "num_events": len(step.events),
                "num_messages": len(step.markov_blanket_messages),
                "step_metadata": _json(step.step_metadata),
            }
            for step in steps
        ],
    }
    step_ids = [row["id"] for row in rows["session_timesteps"]]
    event_rows = []
    owners = _owners(trace.event_history, [s.events for s in steps])
    for event, owner in zip(trace.event_history, owners, strict=True):
        row: dict[str, Any] = {
            "id": ids.next("events"),
            "session_id": trace.session_id,
            "timestep_id": None if owner is None else step_ids[owner],
            "event_type": event.event_type,
            "system_instance_id": event.system_instance_id,
            "event_time": event.time_record.event_time,
            "message_time": _column(event.time_record.message_time),
            "payload": event.model_dump_json(),
        }
        if isinstance(event, LMCAISEvent):
            row |= {column: _column(getattr(event, column)) for column in _LM_COLUMNS}
        elif isinstance(event, EnvironmentEvent):
            row |= {
                "reward": event.reward,
                "terminated": int(event.terminated),  # PostgreSQL's BIGINT takes no booleans
                "truncated": int(event.truncated),
            }
        event_rows.append(row)
    rows["events"] = event_rows
    messages = trace.markov_blanket_message_history
    owners = _owners(messages, [s.markov_blanket_messages for s in steps])
    rows["messages"] = [
        {
            "id": ids.next("messages"),
            "session_id": trace.session_id,
            "timestep_id": None if owner is None else step_ids[owner],
            "message_type": message.message_type,
            "content": _text(message.content),
            "event_time": message.time_record.event_time,
            "message_time": _column(message.time_record.message_time),
            "payload": message.model_dump_json(),
        }
        for message, owner in zip(messages, owners, strict=True)
    ]
    outcome = trace.outcome_reward
    rows["outcome_rewards"] = (
        []
        if outcome is None
        else [
            {
                "id": ids.next("outcome_rewards"),
                "session_id": trace.session_id,
                "total_reward": float(outcome.total_reward),
                "achievements_count": _column(outcome.achievements_count),
                "total_steps": _column(outcome.total_steps),
                "reward_metadata": _json(outcome.reward_metadata),
                "created_at": created,
            }
        ]
    )
    event_ids = [row["id"] for row in event_rows]
    rows["event_rewards"] = [
        {
            "id": ids.next("event_rewards"),
            "event_id": event_ids[reward.event_index]
            if 0 <= reward.event_index < len(event_ids)
            else None,
            "session_id": trace.session_id,
            "turn_number": _column(reward.turn_number),
            "reward_value": float(reward.reward_value),
            "reward_type": reward.reward_type,
            "key": reward.key,
            "annotation": _json(reward.annotation),
            "source": reward.source,
            "created_at": created,
        }
        for reward in trace.event_rewards
    ]
    return rows
