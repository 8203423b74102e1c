"""`JobsWatcher`: follows a job's stream, keeps rolling metric windows, and decides when to stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .models import JobEvent, JobState

Hook = Callable[[JobEvent], Any]


@dataclass
class MetricWindow:
    """The last `size` values of one metric."""

    size: int = 50
    values: deque[float] = field(default_factory=deque)

    def add(self, value: float) -> None:
        self.values.append(value)
        if len(self.values) > self.size:
            self.values.popleft()

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    def summary(self) -> dict[str, float | None]:
        if not self.values:
            return {"mean": None, "std": None, "min": None, "max": None, "last": None}
        mean = sum(self.values) / len(self.values)
        variance = sum((v - mean) ** 2 for v in self.values) / len(self.values)
        return {
            "mean": mean,
            "std": math.sqrt(variance),
            "min": min(self.values),
            "max": max(self.values),
            "last": self.values[-1],
        }


class JobsWatcher:
    """Consumes `stream_job` and keeps what a person or a script watches for.

    `stop_when(event, watcher)` ends the watch early (True); `timeout_s` ends it with
    `TimeoutError`. Every event can also be appended to a JSONL file. `stream_options` go to
    `stream_job` (`since_id`, `poll_only`, `poll_interval_s`...).
    """

    def __init__(
        self,
        client: Any,
        job_id: str,
        *,
        types: Sequence[str] | None = None,
        window: int = 50,
        jsonl_path: str | Path | None = None,
        stop_when: Callable[[JobEvent, JobsWatcher], bool] | None = None,
        timeout_s: float | None = None,
        on_event: Hook | None = None,
        on_status_change: Hook | None = None,
        on_metric: Hook | None = None,
        on_artifact: Hook | None = None,
        recent_logs: int = 10,
        stream_options: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.stream_options = stream_options or {}
        self.types = types
        self.window = window
        self.jsonl_path = Path(jsonl_path) if jsonl_path else None
        self.stop_when = stop_when
        self.timeout_s = timeout_s
        self.hooks = {
            "event": on_event,
            "status": on_status_change,
            "metric": on_metric,
            "artifact": on_artifact,
        }
        self.state: JobState | None = None
        self.step: int | None = None
        self.metrics: dict[str, MetricWindow] = {}
        self.logs: deque[str] = deque(maxlen=recent_logs)
        self.artifacts: list[dict[str, Any]] = []
        self.last_seq = 0

    def observe(self, event: JobEvent) -> None:
        """Fold one event into the watcher's view (and run the hooks)."""
        self.last_seq = max(self.last_seq, event.seq)
        self._call("event", event)
        name = event.sse_name
        if isinstance(event.data.get("step"), int):
            self.step = event.data["step"]
        if name == "status" and (state := event.state) is not None and state != self.state:
            self.state = state
            self._call("status", event)
        elif name == "metric":
            metric = str(event.data.get("name") or event.type)
            value = event.data.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.metrics.setdefault(metric, MetricWindow(self.window)).add(float(value))
            self._call("metric", event)
        elif name == "artifact":
            self.artifacts.append(event.data)
            self._call("artifact", event)
        elif name == "log":
            self.logs.append(event.message or json.dumps(event.data))

    def _call(self, hook: str, event: JobEvent) -> None:
        callback = self.hooks[hook]
        if callback is not None:
            callback(event)

    async def run(self) -> JobState | None:
        """Watch until the stream ends or `stop_when` says so; answers the last state seen."""
        if self.timeout_s is None:
            return await self._follow()
        async with asyncio.timeout(self.timeout_s):
            return await self._follow()

    def _sink(self) -> contextlib.AbstractContextManager[TextIO | None]:
        """The JSONL file (appended to, line-buffered), or nothing. Lines are small: a client
        writing them inline costs less than handing each to a thread."""
        if self.jsonl_path is None:
            return contextlib.nullcontext()
        return open(self.jsonl_path, "a", encoding="utf-8", buffering=1)

    async def _follow(self) -> JobState | None:
        stream = self.client.stream_job(self.job_id, types=self.types, **self.stream_options)
        with self._sink() as sink:
            async with contextlib.aclosing(stream):  # a `break` must close the connection now
                async for event in stream:
                    self.observe(event)
                    if sink is not None:
                        sink.write(event.model_dump_json() + "\n")
                    if self.stop_when is not None and self.stop_when(event, self):
                        return self.state
        if self.state is None or not self.state.terminal:
            # the stream ended but its filter hid the final status: ask the job itself
            self.state = JobState(str((await self.client.status(self.job_id))["state"]))
        return self.state
