"""`JobEmitter`: how an in-process producer (a training or eval loop) reports progress."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .bus import JobBus
from .models import EventIn, JobState


class JobEmitter:
    """Emits onto a job's bus. Safe from any thread: calls off the bus's loop hop onto it."""

    def __init__(self, bus: JobBus, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.bus = bus
        self.loop = loop or asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @property
    def job_id(self) -> str:
        return self.bus.job_id

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        event = EventIn(type=type, level=level, message=message, data=data or {})
        if threading.get_ident() == self._loop_thread:
            self.bus.emit(event)
        else:
            self.loop.call_soon_threadsafe(self.bus.emit, event)

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
