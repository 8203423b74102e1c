"""One line per session for the trace viewer's list: reward, models, tokens, duration, time;
and the filter that picks one optimization's rollouts (by job, by candidate).

`TraceReader.list_sessions` answers the page (filtered by reward and model, newest first); the
columns it lacks come from three grouped reads over that page's sessions, so a page costs four
queries however long its sessions are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from synth_ai.tracing_v3 import TraceReader

MAX_MODELS = 500


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        if start and end:
            return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        pass
    return None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def optimizer_patterns(job: str | None, candidate: str | None) -> list[str]:
    """Session-id patterns for an optimization's rollouts: their session id is the rollout's
    cid, `pl-<candidate>-<job>-<random>` (synth_ai.optimize.rollouts), and the candidate is
    also the trace metadata's `run_id`."""
    patterns = []
    if candidate:
        patterns.append(f"pl-{_like(candidate)}-%")
    if job:
        patterns.append(f"pl-%-{_like(job)}-%")
    return patterns


def session_rows(
    reader: TraceReader,
    *,
    limit: int,
    offset: int = 0,
    min_reward: float | None = None,
    model: str | None = None,
    session_like: list[str] | None = None,
) -> list[dict[str, Any]]:
    """A page of session summaries (blocking: run it off the event loop)."""
    rows = reader.list_sessions(
        limit=limit,
        offset=offset,
        min_reward=min_reward,
        model=model,
        session_like=session_like or (),
    )
    ids = [row["session_id"] for row in rows]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    with reader.database.reading() as connection:
        usage = connection.query(
            "SELECT session_id, SUM(COALESCE(total_tokens, "
            "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0))) AS tokens, "
            "MIN(event_time) AS first_event, MAX(event_time) AS last_event "
            f"FROM events WHERE session_id IN ({marks}) GROUP BY session_id",
            ids,
        )
        models = connection.query(
            "SELECT DISTINCT session_id, model_name FROM events "
            f"WHERE session_id IN ({marks}) AND model_name IS NOT NULL ORDER BY model_name",
            ids,
        )
        spans = connection.query(
            "SELECT session_id, MIN(started_at) AS started, MAX(completed_at) AS completed "
            f"FROM session_timesteps WHERE session_id IN ({marks}) GROUP BY session_id",
            ids,
        )
    usage_of = {row["session_id"]: row for row in usage}
    span_of = {row["session_id"]: row for row in spans}
    models_of: dict[str, list[str]] = {}
    for row in models:
        models_of.setdefault(row["session_id"], []).append(row["model_name"])
    summaries = []
    for row in rows:
        sid = row["session_id"]
        used, span = usage_of.get(sid, {}), span_of.get(sid, {})
        duration = _seconds_between(span.get("started"), span.get("completed"))
        if duration is None and used.get("first_event") is not None:
            duration = float(used["last_event"]) - float(used["first_event"])
        reward = row["outcome_reward"]
        summaries.append(
            {
                "session_id": sid,
                "created_at": row["created_at"],
                "reward": None if reward is None else float(reward),
                "models": models_of.get(sid, []),
                "tokens": int(used["tokens"]) if used.get("tokens") is not None else None,
                "duration_s": duration,
                "steps": row["num_timesteps"],
                "events": row["num_events"],
                "messages": row["num_messages"],
            }
        )
    return summaries


def model_names(reader: TraceReader) -> list[str]:
    """Every model the store's sessions called, for the filter (blocking)."""
    with reader.database.reading() as connection:
        rows = connection.query(
            "SELECT DISTINCT model_name FROM events WHERE model_name IS NOT NULL "
            "ORDER BY model_name LIMIT ?",
            [MAX_MODELS],
        )
    return [row["model_name"] for row in rows]
