"""`Emitter`: what a producer (a training or eval loop) reports progress through, and
`JobEmitter`, the in-process one (`RemoteEmitter`, in `.remote`, is the one over HTTP).

Both take what training code has at hand: event data is made JSON when emitted (`plain_data`),
so a datetime or a numpy number is stored as an ISO string or a Python number rather than
failing later, and anything else is a `TypeError` raised to the emitting caller alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from .models import EventIn, JobEvent, JobState

if TYPE_CHECKING:
    from .service import JobsService


def plain_data(data: dict[str, Any] | None) -> dict[str, Any]:
    """Event data in JSON's own types: datetimes, dates, UUIDs and Decimals as strings, sets
    and tuples as lists, arrays and array scalars (numpy, torch, `array`) through their
    `tolist()`. Raises `TypeError` for anything else."""
    try:
        plain: dict[str, Any] = to_jsonable_python(data or {}, fallback=_tolist)
    except (ValueError, TypeError, RecursionError) as exc:  # depth, unknown types
        raise TypeError(f"event data is not JSON: {exc}") from None
    return plain


def _tolist(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if not callable(tolist):
        raise TypeError(f"a {type(value).__name__} has no JSON form")
    return tolist()


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
        event = EventIn(type=type, level=level, message=message, data=plain_data(data))
        self.service.emit_nowait(self.job_id, [event])

    async def emit_committed(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        event = EventIn(type=type, level=level, message=message, data=plain_data(data))
        (stored,) = await self.service.emit(self.job_id, [event])
        return stored
