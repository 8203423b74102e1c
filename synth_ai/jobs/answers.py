"""The JSON the jobs routes answer, spelt out as models for the OpenAPI document (the routes
write plain dicts; these say what is in them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .models import EventIn, JobEvent, JobState
from .routes import MAX_EVENTS_PER_POST


class Job(BaseModel):
    """A job's snapshot; `state` follows its latest status event."""

    job_id: str
    kind: str
    state: JobState
    created_at: float
    updated_at: float
    last_seq: int = Field(ge=0)
    config: dict[str, Any]
    metadata: dict[str, Any]
    streams: int = Field(default=0, ge=0)
    """Open streams on the job (in the snapshot and the cancel answer, not in lists)."""


class JobList(BaseModel):
    jobs: list[Job]


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_POST)


class EventPage(BaseModel):
    events: list[JobEvent]
    next_seq: int = Field(ge=0)
    """The cursor to pass as `since_seq` for the next page."""


class Seqs(BaseModel):
    seqs: list[int]
    """The seqs assigned to the posted events, in order."""


class StreamToken(BaseModel):
    token: str
    expires_at: float
    """Unix seconds."""


class EventPayload(BaseModel):
    """What a job event's frame carries (`JobEvent.wire_payload`): the producer's `data` at the
    top level, so `JSON.parse(e.data).value` is a metric's value, plus the stored event's own
    `seq`, `type`, `job_id` and `ts` (and `level`, `message` on logs and statuses)."""

    model_config = ConfigDict(extra="allow")

    seq: int = Field(ge=1)
    type: str
    job_id: str
    ts: float


class StreamControl(BaseModel):
    """The payload of an `end`, `reset` or `lagged` frame (no id: it moves no cursor)."""

    last_seq: int = Field(ge=0)
    state: JobState | None = None
    dropped_events: bool | None = None
    message: str | None = None


class Heartbeat(BaseModel):
    """The payload of a `heartbeat` frame, sent with the keep-alive when `types` asks for it."""

    alive: bool
    ts: float


class Artifact(BaseModel):
    name: str
    size: int = Field(ge=0)
    sha256: str
    url: str


class ArtifactList(BaseModel):
    artifacts: list[Artifact]
