"""Job events: one record shape for every producer, mapped onto a few SSE event names.

An event is `{seq, job_id, type, level, message, data, ts}`. `type` is dotted and free
(`eval.metric`, `rl.step.metric`, `job.status`...); what a stream calls it is one of
`status|metric|log|artifact|heartbeat`.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

SSE_NAMES = ("status", "metric", "log", "artifact", "heartbeat")
MAX_MESSAGE_CHARS = 65_536
WIRE_KEYS = ("seq", "type", "job_id", "ts")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)


class EventIn(BaseModel):
    """An event as a producer posts it; the log assigns `seq`, `job_id` and (if absent) `ts`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    level: str = Field(default="info", max_length=32, pattern=r"^[A-Za-z]+$")
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS, pattern=r"^[^\x00]*$")
    """No NUL: PostgreSQL's text cannot hold one, and no log line needs one (the schema says so)."""
    data: dict[str, Any] = Field(default_factory=dict)
    ts: float | None = Field(default=None, ge=0, le=1e13, allow_inf_nan=False)
    """Unix seconds (milliseconds are tolerated); the server's clock when absent."""


class JobEvent(BaseModel):
    seq: int
    job_id: str
    type: str
    level: str = "info"
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    ts: float = Field(default_factory=time.time)
    _frame: bytes | None = PrivateAttr(default=None)
    """The encoded SSE frame, made once however many streams send it."""

    @property
    def sse_name(self) -> str:
        return sse_name(self.type)

    @property
    def state(self) -> JobState | None:
        """The job state a status event announces, if it is one."""
        if self.sse_name != "status":
            return None
        try:
            return JobState(str(self.data.get("state")))
        except ValueError:
            return None

    def wire_payload(self) -> dict[str, Any]:
        """What a stream's `data:` carries: the payload at the top level (DESIGN.md 5), so
        `JSON.parse(e.data).value` is a metric's value, plus `seq`, `type` and `job_id`.

        Every field the producer sent stays; `level` and `message` are added to logs and
        statuses that lack them; `ts`, `seq`, `type` and `job_id` are the stored event's own.
        """
        payload = dict(self.data)
        if self.sse_name in ("log", "status"):
            payload.setdefault("level", self.level)
            if self.message is not None:
                payload.setdefault("message", self.message)
        payload.update(ts=self.ts, seq=self.seq, type=self.type, job_id=self.job_id)
        return payload

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> JobEvent:
        """The event a stream frame describes (its payload becomes `data`)."""
        data = {k: v for k, v in payload.items() if k not in WIRE_KEYS}
        message = payload.get("message")
        return cls(
            seq=payload["seq"],
            job_id=payload["job_id"],
            type=payload["type"],
            level=str(payload.get("level") or "info"),
            message=message if isinstance(message, str) else None,
            data=data,
            ts=payload.get("ts") or time.time(),
        )


def sse_name(event_type: str) -> str:
    """The SSE event name of a dotted type: the last matching word wins, `log` by default.

    `job.status` -> status, `rl.step.metric` -> metric, `prompt.learning.progress` -> metric,
    `artifact.checkpoint` -> artifact, `system.log.warning` -> log.
    """
    parts = event_type.lower().split(".")
    if parts[0] == "artifact":
        return "artifact"
    for part in reversed(parts):
        if part in SSE_NAMES:
            return part
        if part in ("metrics", "progress", "results"):
            return "metric"
        if part in ("state", "started", "completed"):
            return "status"
    return "log"


def finite_json(data: Any) -> Any:
    """A copy in which NaN and infinities are null, with a `_nonfinite` marker at the top.

    JSON has no NaN: a bare `NaN` breaks strict parsers, so the value goes as null and the
    marker says what it was (`{"loss": "NaN"}`, paths dotted for nested values).
    """
    markers: dict[str, str] = {}

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            markers[path] = (
                "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            )
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
        return value

    cleaned = clean(data, "")
    if markers and isinstance(cleaned, dict):
        cleaned["_nonfinite"] = markers
    return cleaned
