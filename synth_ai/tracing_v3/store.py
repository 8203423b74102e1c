"""The SQLite trace store: one writer thread per file, batched commits, readers apart.

Tables keep the names the existing ecosystem reads (`session_traces`, `session_timesteps`,
`events`, `messages`, `outcome_rewards`, `event_rewards`). Each event and message row also holds
its full JSON `payload`, so a session read back is equal to the one written.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils

from .models import EnvironmentEvent, LMCAISEvent, SessionTrace
from .reader import TraceReader
from .schema import connect, ensure_schema
from .writer import BatchWriter

logger = logging.getLogger("synth_ai.tracing_v3")

DEFAULT_DB_PATH = Path("traces/v3/synth_ai.db")

_TABLES = (
    "event_rewards",
    "outcome_rewards",
    "messages",
    "events",
    "session_timesteps",
    "session_traces",
)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _owners(items: list[Any], groups: list[list[Any]]) -> list[int | None]:
    """For each item of a history, the index of the group (timestep) holding it, if any.

    Matched by identity first (how the tracer builds traces), then by equality.
    """
    owners: list[int | None] = [None] * len(items)
    for group_index, group in enumerate(groups):
        for member in group:
            free = [i for i, item in enumerate(items) if owners[i] is None]
            match = next((i for i in free if items[i] is member), None)
            if match is None:
                match = next((i for i in free if items[i] == member), None)
            if match is not None:
                owners[match] = group_index
    return owners


class TraceStore(TraceReader):
    """Writes session traces from a background thread; reads them back on fresh connections."""

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_DB_PATH,
        *,
        max_queue: int = 10_000,
        max_batch_rows: int = 500,
        flush_interval_s: float = 0.1,
    ) -> None:
        super().__init__(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ensure_schema(self.path)
        self._db: sqlite_utils.Database | None = None
        self._inode: int | None = None
        self._writer: BatchWriter[SessionTrace] = BatchWriter(
            self._write_batch,
            name=f"trace-writer:{self.path.name}",
            max_queue=max_queue,
            max_batch=max_batch_rows,
            flush_interval_s=flush_interval_s,
            weight=lambda t: 1 + len(t.session_time_steps) + len(t.event_history),
            on_stop=self._close_writer_db,
        )

    # --- writing ---------------------------------------------------------------------------

    async def write(self, trace: SessionTrace) -> bool:
        """Queue a trace from the event loop; never blocks it. False if it could not be queued."""
        return await self._writer.submit_async(trace)

    def write_nowait(self, trace: SessionTrace) -> bool:
        return self._writer.submit(trace)

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._writer.flush(timeout_s)

    def close(self) -> None:
        self._writer.close()

    def _close_writer_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def write_errors(self) -> int:
        return self._writer.errors

    @property
    def queued(self) -> int:
        return self._writer.queued

    @property
    def written(self) -> int:
        return self._writer.written

    def health(self) -> dict[str, Any]:
        return {"db": str(self.path), "write_errors": self.write_errors, "queued": self.queued}

    def _writer_db(self) -> sqlite_utils.Database:
        """The writer's connection, reopened when the file was replaced or removed."""
        try:
            inode: int | None = self.path.stat().st_ino
        except OSError:
            inode = None
        if self._db is None or inode != self._inode:
            if self._db is not None:
                self._db.close()
                self._db = None
            ensure_schema(self.path)
            self._db = connect(self.path)
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._inode = self.path.stat().st_ino
        return self._db

    def _write_batch(self, batch: list[SessionTrace]) -> int:
        """One transaction per batch, one savepoint per trace: a bad trace spoils only itself."""
        db = self._writer_db()
        failed = 0
        with db.atomic():
            for trace in batch:
                try:
                    with db.atomic():
                        self._insert(db, trace)
                except sqlite3.IntegrityError as exc:
                    failed += 1
                    logger.warning("trace %s not written: %s", trace.session_id, exc)
        return failed

    def _insert(self, db: sqlite_utils.Database, trace: SessionTrace) -> None:
        for table in _TABLES:
            db.execute(f"DELETE FROM {table} WHERE session_id = ?", [trace.session_id])
        db["session_traces"].insert(
            {
                "session_id": trace.session_id,
                "created_at": trace.created_at.isoformat(),
                "num_timesteps": len(trace.session_time_steps),
                "num_events": len(trace.event_history),
                "num_messages": len(trace.markov_blanket_message_history),
                "metadata": _json(trace.metadata),
            }
        )
        step_ids = [
            db["session_timesteps"]
            .insert(
                {
                    "session_id": trace.session_id,
                    "step_id": step.step_id,
                    "step_index": step.step_index,
                    "turn_number": step.turn_number,
                    "started_at": step.timestamp.isoformat(),
                    "completed_at": step.completed_at.isoformat() if step.completed_at else None,
                    "num_events": len(step.events),
                    "num_messages": len(step.markov_blanket_messages),
                    "step_metadata": _json(step.step_metadata),
                }
            )
            .last_pk
            for step in trace.session_time_steps
        ]
        steps = trace.session_time_steps
        event_owner = _owners(trace.event_history, [s.events for s in steps])
        event_ids = []
        for event, owner in zip(trace.event_history, event_owner, strict=True):
            row: dict[str, Any] = {
                "session_id": trace.session_id,
                "timestep_id": None if owner is None else step_ids[owner],
                "event_type": event.event_type,
                "system_instance_id": event.system_instance_id,
                "event_time": event.time_record.event_time,
                "message_time": event.time_record.message_time,
                "payload": event.model_dump_json(),
            }
            if isinstance(event, LMCAISEvent):
                row |= event.model_dump(
                    include={
                        "model_name",
                        "provider",
                        "input_tokens",
                        "output_tokens",
                        "total_tokens",
                        "cost_usd",
                        "latency_ms",
                        "span_id",
                        "trace_id",
                    }
                )
            elif isinstance(event, EnvironmentEvent):
                row |= {
                    "reward": event.reward,
                    "terminated": event.terminated,
                    "truncated": event.truncated,
                }
            event_ids.append(db["events"].insert(row).last_pk)
        messages = trace.markov_blanket_message_history
        message_owner = _owners(messages, [s.markov_blanket_messages for s in steps])
        db["messages"].insert_all(
            {
                "session_id": trace.session_id,
                "timestep_id": None if owner is None else step_ids[owner],
                "message_type": message.message_type,
                "content": message.content
                if isinstance(message.content, str)
                else _json(message.content),
                "event_time": message.time_record.event_time,
                "message_time": message.time_record.message_time,
                "payload": message.model_dump_json(),
            }
            for message, owner in zip(messages, message_owner, strict=True)
        )
        if trace.outcome_reward is not None:
            outcome = trace.outcome_reward
            db["outcome_rewards"].insert(
                {
                    "session_id": trace.session_id,
                    "total_reward": float(outcome.total_reward),
                    "achievements_count": outcome.achievements_count,
                    "total_steps": outcome.total_steps,
                    "reward_metadata": _json(outcome.reward_metadata),
                    "created_at": trace.created_at.isoformat(),
                }
            )
        db["event_rewards"].insert_all(
            {
                "event_id": event_ids[reward.event_index]
                if 0 <= reward.event_index < len(event_ids)
                else None,
                "session_id": trace.session_id,
                "turn_number": reward.turn_number,
                "reward_value": float(reward.reward_value),
                "reward_type": reward.reward_type,
                "key": reward.key,
                "annotation": _json(reward.annotation),
                "source": reward.source,
                "created_at": trace.created_at.isoformat(),
            }
            for reward in trace.event_rewards
        )
