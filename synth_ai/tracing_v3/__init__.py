"""Tracing v3: session traces in SQLite or PostgreSQL, OpenTelemetry spans, and SFT export.

Names load on first use (PEP 562), so `import synth_ai.task` does not pull in a database
driver or OpenTelemetry for apps that never trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synth_ai.lazy_exports import lazy_exports

_EXPORTS = {
    "formats": ("TraceFormat", "compact_trace", "render_trace"),
    "models": (
        "BaseEvent",
        "EnvironmentEvent",
        "EventReward",
        "LLMCallRecord",
        "LLMMessage",
        "LLMUsage",
        "LMCAISEvent",
        "OutcomeReward",
        "RuntimeEvent",
        "SessionEventMessage",
        "SessionTimeStep",
        "SessionTrace",
        "TimeRecord",
        "ToolCallSpec",
    ),
    "otel": ("OtelBridge", "chat_span_attributes", "provider_from_environment"),
    "reader": ("TraceReader",),
    "settings": ("DEFAULT_DB_PATH", "sft_dir_from_environment", "tracing_enabled_from_environment"),
    "sft": ("SFTWriter", "sft_example", "write_sft_jsonl"),
    "store": ("TraceStore",),
    "tracer": ("SessionTracer", "TraceSession"),
}
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


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


if TYPE_CHECKING:
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
    from .settings import (
        DEFAULT_DB_PATH,
        sft_dir_from_environment,
        tracing_enabled_from_environment,
    )
    from .sft import SFTWriter, sft_example, write_sft_jsonl
    from .store import TraceStore
    from .tracer import SessionTracer, TraceSession
