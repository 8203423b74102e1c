"""`Emitter`: what a producer (a training or eval loop) reports progress through, and
`JobEmitter`, the in-process one (`RemoteEmitter`, in `.remote`, is the one over HTTP)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from .models import EventIn, JobEvent, JobState

if TYPE_CHECKING:
    from .service import JobsService


class Emitter(ABC):
    """What a training or eval loop reports through: `JobEmitter` (in-process) and
    `RemoteEmitter` (over HTTP) both are one. Each says how to `emit` one event; the helpers
    shape the design's payloads (DESIGN.md 5) the same way for both."""

    @abstractmethod
    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None: ...

    def emit_status(self, state: JobState | str, message: str | None = None, **fields: Any) -> None:
        data = {"state": JobState(state).value, "message": message, **fields}
        self.emit("job.status", message=message, data=data)

    def emit_metric(
        self,
        name: str,
        value: float,
        *,
        step: int | None = None,
        split: str | None = None,
        type: str = "job.metric",
        **fields: Any,
    ) -> None:
        self.emit(type, data={"name": name, "value": value, "step": step, "split": split, **fields})

    def emit_log(self, message: str, level: str = "info", type: str = "system.log") -> None:
        self.emit(type, message=message, level=level, data={"level": level, "message": message})

    def emit_artifact(self, kind: str, url: str, *, step: int | None = None, **fields: Any) -> None:
        self.emit(f"artifact.{kind}", data={"kind": kind, "url": url, "step": step, **fields})


class JobEmitter(Emitter):
    """Emits a job's events through its service's log.

    `emit` and the `emit_*` helpers queue the event and return at once, from any thread; they
    report no seq, because nothing is acknowledged before its commit. `emit_committed` waits
    for the commit (on the service's loop) and answers the stored event with its seq.
    """

    def __init__(self, service: JobsService, job_id: str) -> None:
        self.service = service
        self.job_id = job_id

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        event = EventIn(type=type, level=level, message=message, data=data or {})
        self.service.emit_nowait(self.job_id, [event])

    async def emit_committed(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        event = EventIn(type=type, level=level, message=message, data=data or {})
        (stored,) = await self.service.emit(self.job_id, [event])
        return stored
