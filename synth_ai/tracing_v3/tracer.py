"""`SessionTracer`: records one session per rollout, many at once, each isolated.

A session is its own object (no process-wide "current session"), so concurrent rollouts never
see each other's events. Recording is in memory; the finished session goes to the store's
writer thread, so the event loop never waits on SQLite; `finish` returns once it is committed.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from opentelemetry.trace import Span

from .models import (
    EnvironmentEvent,
    EventReward,
    LLMCallRecord,
    LLMMessage,
    LLMUsage,
    LMCAISEvent,
    OutcomeReward,
    RuntimeEvent,
    SessionEventMessage,
    SessionTimeStep,
    SessionTrace,
    TimeRecord,
    utc_now,
)
from .otel import OtelBridge
from .sft import SFTWriter
from .store import TraceStore

Event = LMCAISEvent | EnvironmentEvent | RuntimeEvent


def as_datetime(moment: datetime | float) -> datetime:
    """A time given as a datetime or as Unix seconds, as an aware datetime."""
    if isinstance(moment, datetime):
        return moment
    if isinstance(moment, bool) or not isinstance(moment, int | float) or not math.isfinite(moment):
        raise ValueError(f"a time is a datetime or finite Unix seconds, not {moment!r:.40}")
    return datetime.fromtimestamp(moment, tz=UTC)


class Timestep:
    """Context manager (sync or async) that opens a timestep and closes it on exit."""

    def __init__(self, session: TraceSession, step: SessionTimeStep) -> None:
        self._session = session
        self.step = step

    def __enter__(self) -> SessionTimeStep:
        self._session.current_step = self.step
        return self.step

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._session.lock:
            self.step.completed_at = utc_now()
            if self._session.current_step is self.step:
                self._session.current_step = None

    async def __aenter__(self) -> SessionTimeStep:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class TraceSession:
    """The recorder of one session. Methods are plain (no I/O): safe from worker threads too.

    Each record is made under the session's lock, so `snapshot` sees whole records only: a
    sync executor's worker may still be recording after its rollout timed out, while the
    snapshot is being written.
    """

    def __init__(
        self,
        session_id: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        otel: OtelBridge | None = None,
        sft: SFTWriter | None = None,
        system_instance_id: str = "task_app",
    ) -> None:
        self.trace = SessionTrace(session_id=session_id, metadata=dict(metadata or {}))
        self.current_step: SessionTimeStep | None = None
        self.lock = threading.Lock()
        self.system_instance_id = system_instance_id
        self._otel = otel
        self._sft = sft
        self._span: Span | None = (
            otel.start_rollout(session_id, self.trace.metadata) if otel else None
        )

    @property
    def session_id(self) -> str:
        return self.trace.session_id

    def _time(self) -> TimeRecord:
        step = self.current_step
        return TimeRecord(event_time=time.time(), message_time=step.turn_number if step else None)

    def timestep(
        self,
        step_id: str | None = None,
        *,
        turn_number: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Timestep:
        with self.lock:
            index = len(self.trace.session_time_steps)
            step = SessionTimeStep(
                step_id=step_id or f"step_{index}",
                step_index=index,
                turn_number=turn_number if turn_number is not None else index,
                step_metadata=dict(metadata or {}),
            )
            self.trace.session_time_steps.append(step)
        return Timestep(self, step)

    def record_event(self, event: Event) -> int:
        """Add an event to the history and the open timestep; answers its history index."""
        with self.lock:
            self.trace.event_history.append(event)
            if self.current_step is not None:
                self.current_step.events.append(event)
            return len(self.trace.event_history) - 1

    def record_message(
        self, content: Any, message_type: str, metadata: Mapping[str, Any] | None = None
    ) -> SessionEventMessage:
        message = SessionEventMessage(
            content=content,
            message_type=message_type,
            time_record=self._time(),
            metadata=dict(metadata or {}),
        )
        with self.lock:
            self.trace.markov_blanket_message_history.append(message)
            if self.current_step is not None:
                self.current_step.markov_blanket_messages.append(message)
        return message

    def record_llm_call(self, record: LLMCallRecord) -> LMCAISEvent:
        """Record a model call; it also becomes a `chat` span and, when enabled, an SFT line."""
        span_id = trace_id = None
        if self._otel is not None and self._span is not None:
            context = self._otel.record_chat(self._span, record).get_span_context()
            span_id, trace_id = f"{context.span_id:016x}", f"{context.trace_id:032x}"
        event = LMCAISEvent(
            system_instance_id=self.system_instance_id,
            time_record=self._time(),
            model_name=record.model_name,
            provider=record.provider,
            input_tokens=record.usage.input_tokens,
            output_tokens=record.usage.output_tokens,
            total_tokens=record.usage.total_tokens,
            cost_usd=record.usage.cost_usd,
            latency_ms=record.latency_ms,
            span_id=span_id,
            trace_id=trace_id,
            call_records=[record],
        )
        self.record_event(event)
        if self._sft is not None:
            self._sft.write(record)
        return event

    def record_chat_completion(
        self,
        request: Mapping[str, Any],
        response: Mapping[str, Any],
        *,
        started_at: datetime | float,
        completed_at: datetime | float,
        provider: str | None = "openai",
    ) -> LMCAISEvent:
        """Record an OpenAI-style chat-completions request and its response. The times are
        datetimes or Unix seconds (`time.time()`)."""
        started_at, completed_at = as_datetime(started_at), as_datetime(completed_at)
        choice = (response.get("choices") or [{}])[0]
        output = LLMMessage.from_openai(choice.get("message") or {})
        params = {
            key: request[key]
            for key in ("temperature", "max_tokens", "max_completion_tokens", "top_p")
            if request.get(key) is not None
        }
        params |= {"response_id": response.get("id"), "response_model": response.get("model")}
        record = LLMCallRecord(
            call_id=str(response.get("id") or uuid.uuid4().hex),
            provider=provider,
            model_name=str(request.get("model") or response.get("model") or "unknown"),
            started_at=started_at,
            completed_at=completed_at,
            latency_ms=(completed_at - started_at).total_seconds() * 1000,
            request_messages=[LLMMessage.from_openai(m) for m in request.get("messages") or []],
            output_messages=[output],
            tools=list(request["tools"]) if request.get("tools") else None,
            tool_choice=request.get("tool_choice"),
            usage=LLMUsage.from_openai(response.get("usage")),
            finish_reason=choice.get("finish_reason"),
            request_params={k: v for k, v in params.items() if v is not None},
        )
        return self.record_llm_call(record)

    def record_environment(
        self,
        reward: float,
        *,
        terminated: bool = False,
        truncated: bool = False,
        state_before: dict[str, Any] | None = None,
        state_after: dict[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> EnvironmentEvent:
        event = EnvironmentEvent(
            system_instance_id=self.system_instance_id,
            time_record=self._time(),
            reward=float(reward),
            terminated=terminated,
            truncated=truncated,
            system_state_before=state_before,
            system_state_after=state_after,
            metadata=dict(metadata or {}),
        )
        self.record_event(event)
        return event

    def record_event_reward(self, event_index: int, value: float, **details: Any) -> None:
        reward = EventReward(event_index=event_index, reward_value=float(value), **details)
        with self.lock:
            self.trace.event_rewards.append(reward)

    def record_outcome_reward(
        self, total_reward: float, *, achievements_count: int = 0, **metadata: Any
    ) -> None:
        with self.lock:
            self.trace.outcome_reward = OutcomeReward(
                total_reward=float(total_reward),
                achievements_count=achievements_count,
                total_steps=len(self.trace.session_time_steps),
                reward_metadata=metadata,
            )

    def snapshot(self) -> SessionTrace:
        """The trace as it stands, in lists and dicts of its own (the records themselves are
        shared, and never changed once made): what the store writes, whatever a late recorder
        still appends to the session."""
        with self.lock:
            trace = self.trace
            steps = [
                step.model_copy(
                    update={
                        "events": list(step.events),
                        "markov_blanket_messages": list(step.markov_blanket_messages),
                        "step_metadata": dict(step.step_metadata),
                    }
                )
                for step in trace.session_time_steps
            ]
            return trace.model_copy(
                update={
                    "session_time_steps": steps,
                    "event_history": list(trace.event_history),
                    "markov_blanket_message_history": list(trace.markov_blanket_message_history),
                    "metadata": dict(trace.metadata),
                    "event_rewards": list(trace.event_rewards),
                }
            )

    def end(self, error: str | None = None) -> None:
        if error:
            with self.lock:
                self.trace.metadata.setdefault("error", error)
        if self._otel is not None and self._span is not None:
            reward = self.trace.outcome_reward.total_reward if self.trace.outcome_reward else None
            self._otel.end_rollout(self._span, reward, error)
            self._span = None


class SessionTracer:
    """Opens sessions that are written to the store (if any) when they end."""

    def __init__(
        self,
        store: TraceStore | None = None,
        *,
        otel: OtelBridge | None = None,
        sft: SFTWriter | None = None,
    ) -> None:
        self.store = store
        self.otel = otel
        self.sft = sft

    def start(
        self, session_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> TraceSession:
        return TraceSession(session_id or uuid.uuid4().hex, metadata, otel=self.otel, sft=self.sft)

    async def finish(self, session: TraceSession, error: str | None = None) -> str | None:
        """End the session and store it; answers None once it is committed (or when there is
        no store), else why it could not be stored. Never raises for a failing store."""
        session.end(error)
        if self.store is None:
            return None
        try:
            await self.store.write(session.snapshot())
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    @asynccontextmanager
    async def session(
        self, session_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> AsyncIterator[TraceSession]:
        session = self.start(session_id, metadata)
        error: str | None = None
        try:
            yield session
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            await self.finish(session, error)
