"""Reading the trace store: session summaries with filters, and whole sessions back."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from pydantic import TypeAdapter

from synth_ai.storage import Connection, Database, DatabaseURL, open_database, parse_database_url

from .models import (
    EventReward,
    OutcomeReward,
    SessionEventMessage,
    SessionTimeStep,
    SessionTrace,
    TraceEvent,
)

_EVENT = TypeAdapter(TraceEvent)


class TraceReader:
    """Reads a store (a SQLite path or URL, or a `postgresql://` URL) on a connection per call:
    a fresh one on SQLite, one from a small pool on PostgreSQL; never the writer's."""

    def __init__(self, url: DatabaseURL | str | os.PathLike[str]) -> None:
        self.url = url if isinstance(url, DatabaseURL) else parse_database_url(url)
        self._database: Database | None = None
        self._database_lock = threading.Lock()

    @property
    def database(self) -> Database:
        """The engine, opened on first use: a store's driver loads on its writer thread, and
        one missing (PostgreSQL without its extra) fails writes, not the constructor."""
        with self._database_lock:
            if self._database is None:
                self._database = open_database(self.url)
            return self._database

    def close(self) -> None:
        """Release pooled connections (the reader can still be used afterwards)."""
        with self._database_lock:
            database, self._database = self._database, None
        if database is not None:
            database.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def list_sessions(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        min_reward: float | None = None,
        model: str | None = None,
        since: datetime | None = None,
        session_like: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Session summaries, newest first, filtered by outcome reward, model, start time and
        session id patterns (SQL `LIKE`, `\\` escaping; every one must match)."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for pattern in session_like:
            where.append("s.session_id LIKE ? ESCAPE '\\'")
            params.append(pattern)
        if min_reward is not None:
            where.append("o.total_reward >= ?")
            params.append(min_reward)
        if model is not None:
            where.append(
                "EXISTS (SELECT 1 FROM events e WHERE e.session_id = s.session_id"
                " AND e.model_name = ?)"
            )
            params.append(model)
        if since is not None:
            where.append("s.created_at >= ?")
            params.append(since.isoformat())
        sql = f"""
            SELECT s.session_id, s.created_at, s.num_timesteps, s.num_events, s.num_messages,
                   s.metadata, o.total_reward AS outcome_reward
            FROM session_traces s LEFT JOIN outcome_rewards o ON o.session_id = s.session_id
            WHERE {" AND ".join(where)}
            ORDER BY s.created_at DESC, s.session_id LIMIT ? OFFSET ?
        """
        with self.database.reading() as connection:
            rows = connection.query(sql, [*params, limit, offset])
        for row in rows:
            row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else {}
        return rows

    def load_session(self, session_id: str) -> SessionTrace | None:
        with self.database.reading() as connection:
            return self._load(connection, session_id)

    def iter_sessions(
        self, *, min_reward: float | None = None, model: str | None = None, page: int = 200
    ) -> Iterator[SessionTrace]:
        """Every matching session, loaded one at a time (memory stays flat)."""
        offset = 0
        while True:
            rows = self.list_sessions(limit=page, offset=offset, min_reward=min_reward, model=model)
            for row in rows:
                trace = self.load_session(row["session_id"])
                if trace is not None:
                    yield trace
            if len(rows) < page:
                return
            offset += page

    @staticmethod
    def _load(db: Connection, session_id: str) -> SessionTrace | None:
        rows = db.query("SELECT * FROM session_traces WHERE session_id = ?", [session_id])
        if not rows:
            return None
        session = rows[0]
        step_rows = db.query(
            "SELECT * FROM session_timesteps WHERE session_id = ? ORDER BY step_index, id",
            [session_id],
        )
        steps = {
            row["id"]: SessionTimeStep(
                step_id=row["step_id"],
                step_index=row["step_index"],
                turn_number=row["turn_number"],
                timestamp=row["started_at"],
                completed_at=row["completed_at"],
                step_metadata=json.loads(row["step_metadata"] or "{}"),
            )
            for row in step_rows
        }
        history: list[TraceEvent] = []
        event_index: dict[int, int] = {}
        for row in db.query(
            "SELECT id, timestep_id, payload FROM events WHERE session_id = ? ORDER BY id",
            [session_id],
        ):
            event = _EVENT.validate_json(row["payload"])
            event_index[row["id"]] = len(history)
            history.append(event)
            if row["timestep_id"] in steps:
                steps[row["timestep_id"]].events.append(event)
        messages = []
        for row in db.query(
            "SELECT timestep_id, payload FROM messages WHERE session_id = ? ORDER BY id",
            [session_id],
        ):
            message = SessionEventMessage.model_validate_json(row["payload"])
            messages.append(message)
            if row["timestep_id"] in steps:
                steps[row["timestep_id"]].markov_blanket_messages.append(message)
        outcome_rows = db.query(
            "SELECT * FROM outcome_rewards WHERE session_id = ? ORDER BY id DESC LIMIT 1",
            [session_id],
        )
        outcome = (
            OutcomeReward(
                total_reward=outcome_rows[0]["total_reward"],
                achievements_count=outcome_rows[0]["achievements_count"] or 0,
                total_steps=outcome_rows[0]["total_steps"] or 0,
                reward_metadata=json.loads(outcome_rows[0]["reward_metadata"] or "{}"),
            )
            if outcome_rows
            else None
        )
        event_rewards = [
            EventReward(
                event_index=event_index.get(row["event_id"], -1),
                reward_value=row["reward_value"],
                reward_type=row["reward_type"],
                key=row["key"],
                turn_number=row["turn_number"],
                annotation=json.loads(row["annotation"]) if row["annotation"] else None,
                source=row["source"],
            )
            for row in db.query(
                "SELECT * FROM event_rewards WHERE session_id = ? ORDER BY id", [session_id]
            )
        ]
        return SessionTrace(
            session_id=session_id,
            created_at=session["created_at"],
            session_time_steps=list(steps.values()),
            event_history=history,
            markov_blanket_message_history=messages,
            metadata=json.loads(session["metadata"] or "{}"),
            outcome_reward=outcome,
            event_rewards=event_rewards,
        )
