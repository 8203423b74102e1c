"""Tracing for a task app's rollouts: one session per rollout, keyed by its correlation id."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth_ai.storage.url import DatabaseURL
from synth_ai.tracing_v3.settings import TracingSettings, trace_location

from .config import TaskAppConfig
from .contracts import RolloutRequest

if TYPE_CHECKING:
    from synth_ai.tracing_v3 import SessionTracer, TraceSession

TRACE_PURPOSES = frozenset({"check"})
"""What `record.purpose` may mark a session's `metadata.purpose` with (`synth-ai check` sends
"check"). It is caller input: any other value is dropped, never stored."""


def trace_purpose(request: RolloutRequest) -> str | None:
    purpose = (request.record.model_extra or {}).get("purpose")
    return purpose if isinstance(purpose, str) and purpose in TRACE_PURPOSES else None


class RolloutTracing:
    """Owns an app's store, SFT writer and OTel bridge, opened on the first rollout.

    The store (SQLite or PostgreSQL) and SFT lines follow the tracing switch; OpenTelemetry
    spans follow the provider (the config's, or OTLP from the environment) whatever the switch.
    A rollout that asks for `record.return_trace` always gets a session, so its response can
    carry the trace.
    """

    def __init__(self, config: TaskAppConfig) -> None:
        self.config = config
        environment = TracingSettings.from_environment()  # read once, refused here if bad
        self.enabled = config.tracing if config.tracing is not None else environment.enabled
        self.db: DatabaseURL | None = None
        """Where traces go; parsed here, so a location no engine has fails the app's start."""
        if self.enabled:
            given = config.trace_db
            self.db = trace_location(given) if given is not None else environment.store_url()
        sft_dir = config.sft_output_dir or environment.sft_dir
        self.sft_dir = Path(sft_dir) if sft_dir else None
        self._tracer: SessionTracer | None = None
        self._live: Counter[str] = Counter()
        """Sessions in flight per correlation id (rollouts of one loop: no lock needed)."""
        self._may_trace = (
            self.enabled
            or config.tracer_provider is not None
            or environment.otlp_endpoint is not None
        )
        """False: no rollout is traced unless it asks for its trace, so nothing of the store
        or OpenTelemetry is even imported."""

    def _open(self) -> SessionTracer:
        if self._tracer is None:
            # imported here: apps that never trace never load a database driver or OpenTelemetry
            from synth_ai.tracing_v3 import (
                OtelBridge,
                SessionTracer,
                SFTWriter,
                TraceStore,
                provider_from_environment,
            )

            provider = self.config.tracer_provider or provider_from_environment(self.config.app_id)
            self._tracer = SessionTracer(
                TraceStore(self.db) if self.db is not None else None,
                otel=OtelBridge(provider) if provider is not None else None,
                sft=SFTWriter(self.sft_dir) if self.enabled and self.sft_dir else None,
            )
        return self._tracer

    def tracer_for(self, request: RolloutRequest) -> SessionTracer | None:
        if not self._may_trace and not request.record.return_trace:
            return None
        tracer = self._open()
        if tracer.store is not None or tracer.otel is not None or request.record.return_trace:
            return tracer
        return None

    def session_id(self, correlation_id: str) -> str:
        """The session id of a rollout starting now: its correlation id, so a later attempt
        (a retry) replaces the earlier session; but while another rollout with that id is
        still in flight, an id of its own, so concurrent rollouts never overwrite each
        other's session (each then answers `trace_stored: true` truly). Every call is paired
        with one `finished`."""
        live = self._live[correlation_id]
        self._live[correlation_id] = live + 1
        return correlation_id if live == 0 else f"{correlation_id}~{uuid.uuid4().hex[:12]}"

    def finished(self, correlation_id: str) -> None:
        left = self._live[correlation_id] - 1
        if left:
            self._live[correlation_id] = left
        else:
            del self._live[correlation_id]

    def start(
        self, request: RolloutRequest, correlation_id: str
    ) -> tuple[SessionTracer, TraceSession] | None:
        """A session for the rollout (pair it with `finished`), or None when not traced."""
        tracer = self.tracer_for(request)
        if tracer is None:
            return None
        session_id = self.session_id(correlation_id)
        metadata = {
            "app_id": self.config.app_id,
            "run_id": request.run_id,
            "trace_correlation_id": correlation_id,
            "mode": request.mode.value,
            "seed": request.env.seed,
            "model": request.policy.config.get("model"),
        }
        purpose = trace_purpose(request)
        if purpose is None:
            return tracer, tracer.start(session_id, metadata)
        from synth_ai.tracing_v3 import TraceSession

        metadata["purpose"] = purpose
        # a check's LLM calls are probes, not training data: no live SFT lines for them
        return tracer, TraceSession(session_id, metadata, otel=tracer.otel)

    def health(self) -> dict[str, Any]:
        """Whether traces are being stored: `healthy` is false while the store keeps failing,
        with the counts and the last error."""
        store = self._tracer.store if self._tracer else None
        sft = self._tracer.sft if self._tracer else None
        stored: dict[str, Any] = (
            store.health()
            if store is not None
            else {"healthy": True, "written": 0, "write_errors": 0, "queued": 0, "last_error": None}
        )
        return {
            "enabled": self.enabled,
            **stored,
            "db": str(self.db) if self.db is not None else None,
            "sft_output_dir": str(self.sft_dir) if self.enabled and self.sft_dir else None,
            "sft_write_errors": sft.write_errors if sft else 0,
        }

    async def close(self) -> None:
        tracer, self._tracer = self._tracer, None
        if tracer is None:
            return
        if tracer.store is not None:
            await asyncio.to_thread(tracer.store.close)
        if tracer.sft is not None:
            await asyncio.to_thread(tracer.sft.close)
        if tracer.otel is not None and self.config.tracer_provider is None:
            await asyncio.to_thread(tracer.otel.provider.shutdown)


__all__ = ["RolloutTracing"]
