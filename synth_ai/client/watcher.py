"""`JobsWatcher`: follows a job's stream, keeps rolling metric windows, and decides when to stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from synth_ai.job_events.models import JobEvent, JobState

Hook = Callable[[JobEvent], Any]

# how a job's kind reads to a person, from the snapshot's `kind` or its events' type prefixes
KIND_LABELS = {
    "rl": "RL",
    "ft": "fine-tuning",
    "sft": "fine-tuning",
    "fine_tuning": "fine-tuning",
    "eval": "eval",
    "prompt_learning": "prompt learning",
}
TYPE_PREFIXES = (
    ("prompt.learning.", "prompt learning"),
    ("rl.", "RL"),
    ("ft.", "fine-tuning"),
    ("sft.", "fine-tuning"),
    ("eval.", "eval"),
)


def kind_of_type(event_type: str) -> str | None:
    """The job kind an event type names by its prefix (`rl.step.metric` -> RL), if any."""
    lowered = event_type.lower()
    for prefix, label in TYPE_PREFIXES:
        if lowered.startswith(prefix):
            return label
    return None


@dataclass
class MetricWindow:
    """The last `size` values of one metric."""

    size: int = 50
    values: deque[float] = field(default_factory=deque)
    count: int = 0
    """Every value ever added, not only the window's."""
    total: float = 0.0

    def add(self, value: float) -> None:
        self.values.append(value)
        self.count += 1
        self.total += value
        if len(self.values) > self.size:
            self.values.popleft()

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def overall_mean(self) -> float | None:
        """The mean of every value added (the window's `mean` covers the last `size`)."""
        return self.total / self.count if self.count else None

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
    `stream_job` (`since_id`, `poll_only`, `poll_interval_s`, `retry_for_s`...).

    Besides state, step and metrics it keeps `total` (from a status or metric carrying one:
    "step N of TOTAL"), the job's `kind` (from its snapshot, else its events' type prefixes),
    and what `summary()` reports when the job ends.
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
        self.total: int | None = None
        self.events = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.ended_ts: float | None = None
        self.snapshot: dict[str, Any] | None = None
        self.metric_kinds: dict[str, str] = {}
        self._type_kinds: Counter[str] = Counter()

    @property
    def kind(self) -> str | None:
        """RL, fine-tuning, eval, prompt learning... or None while nothing says."""
        if self.snapshot is not None:
            kind = str(self.snapshot.get("kind") or "")
            if kind and kind != "custom":
                return KIND_LABELS.get(kind.lower(), kind)
        if self._type_kinds:
            return self._type_kinds.most_common(1)[0][0]  # ties: the first seen
        return None

    async def refresh_snapshot(self) -> dict[str, Any]:
        """Ask the server for the job's snapshot (kind, state, timestamps) and keep it."""
        self.snapshot = await self.client.status(self.job_id)
        return self.snapshot

    def observe(self, event: JobEvent) -> None:
        """Fold one event into the watcher's view, then run the hooks (`on_event` last)."""
        self.last_seq = max(self.last_seq, event.seq)
        self.events += 1
        self.first_ts = event.ts if self.first_ts is None else self.first_ts
        self.last_ts = event.ts
        name = event.sse_name
        kind = kind_of_type(event.type)
        if kind is not None:
            self._type_kinds[kind] += 1
        if isinstance(event.data.get("step"), int) and not isinstance(event.data["step"], bool):
            self.step = event.data["step"]
        total = event.data.get("total")
        if name in ("status", "metric") and isinstance(total, int) and not isinstance(total, bool):
            self.total = total
        if name == "status" and (state := event.state) is not None and state != self.state:
            self.state = state
            if state.terminal:
                self.ended_ts = event.ts
            self._call("status", event)
        elif name == "metric":
            metric = str(event.data.get("name") or event.type)
            value = event.data.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.metrics.setdefault(metric, MetricWindow(self.window)).add(float(value))
                if kind is not None:
                    self.metric_kinds.setdefault(metric, kind)
            self._call("metric", event)
        elif name == "artifact":
            self.artifacts.append(event.data)
            self._call("artifact", event)
        elif name == "log":
            self.logs.append(event.message or json.dumps(event.data))
        self._call("event", event)  # last, so it sees the event folded in

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
            self.state = JobState(str((await self.refresh_snapshot())["state"]))
        return self.state

    def duration_s(self) -> float | None:
        """From the job's creation (else its first event seen) to its end (else the last)."""
        snapshot = self.snapshot or {}
        start = snapshot.get("created_at", self.first_ts)
        end = self.ended_ts
        if end is None and self.state is not None and self.state.terminal:
            end = snapshot.get("updated_at")
        end = end if end is not None else self.last_ts
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            return None
        return max(0.0, float(end) - float(start))

    def summary(self) -> dict[str, Any]:
        """What a job came to: state, kind, duration, step, events, metrics, artifacts."""
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "state": self.state.value if self.state is not None else None,
            "duration_s": self.duration_s(),
            "step": self.step,
            "total": self.total,
            "events": self.events,
            "last_seq": self.last_seq,
            "metrics": {
                name: {
                    "last": window.last,
                    "mean": window.overall_mean,
                    "count": window.count,
                    "kind": self.metric_kinds.get(name),
                }
                for name, window in sorted(self.metrics.items())
            },
            "artifacts": list(self.artifacts),
        }
