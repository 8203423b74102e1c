"""The rollout context: what an executor is handed beside the request, and how it is told
to stop."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from synth_ai.tracing_v3 import TraceSession

    from .inference import SharedHttpClient


@dataclass(slots=True)
class RolloutContext:
    """What the framework hands an executor beside the request."""

    correlation_id: str
    inference_url: str | None
    """The policy's inference URL, normalised and stamped with `cid`: call exactly this."""
    deadline_s: float
    env_id: str
    policy_id: str
    _cancelled: threading.Event | None = None
    trace: TraceSession | None = None
    """This rollout's trace session when tracing is on (or a trace was asked for)."""
    _http: SharedHttpClient | None = None
    _worker: Future[Any] | None = None
    """A sync executor's run in the worker pool: its slot is held until the thread returns."""

    @property
    def cancelled(self) -> threading.Event:
        """Set when the rollout is cancelled, times out or its server shuts down; sync
        executors may poll or wait on it. Made on first use (async rollouts rarely look);
        for sync executors the runner makes it on the loop before handing the rollout to a
        worker thread."""
        if self._cancelled is None:
            self._cancelled = threading.Event()
        return self._cancelled

    @property
    def http(self) -> httpx.AsyncClient:
        """The app's pooled HTTP client (for async executors)."""
        if self._http is None:
            raise RuntimeError("this context has no shared HTTP client")
        return self._http.get()
