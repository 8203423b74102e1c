"""Tracing v3: session traces in SQLite, OpenTelemetry spans, and SFT export."""

from .formats import TraceFormat, compact_trace, render_trace
from .models import (
    BaseEvent,
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
    ToolCallSpec,
)
from .otel import OtelBridge, chat_span_attributes, provider_from_environment
from .reader import TraceReader
from .settings import tracing_enabled_from_environment
from .sft import SFTWriter, sft_dir_from_environment, sft_example, write_sft_jsonl
from .store import DEFAULT_DB_PATH, TraceStore
from .tracer import SessionTracer, TraceSession

__all__ = [
    "DEFAULT_DB_PATH",
    "BaseEvent",
    "EnvironmentEvent",
    "EventReward",
    "LLMCallRecord",
    "LLMMessage",
    "LLMUsage",
    "LMCAISEvent",
    "OtelBridge",
    "OutcomeReward",
    "RuntimeEvent",
    "SFTWriter",
    "SessionEventMessage",
    "SessionTimeStep",
    "SessionTrace",
    "SessionTracer",
    "TimeRecord",
    "ToolCallSpec",
    "TraceFormat",
    "TraceReader",
    "TraceSession",
    "TraceStore",
    "chat_span_attributes",
    "compact_trace",
    "provider_from_environment",
    "render_trace",
    "sft_dir_from_environment",
    "sft_example",
    "tracing_enabled_from_environment",
    "write_sft_jsonl",
]
