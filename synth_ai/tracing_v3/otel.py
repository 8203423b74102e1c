"""The OpenTelemetry bridge: a `rollout` span per session, a `chat {model}` span per LLM call.

The project owns a private `TracerProvider` and never replaces the global one unless asked.
OTLP export switches on with the standard `OTEL_EXPORTER_OTLP_*` variables when the `otlp` extra
is installed; that is how traces leave one machine for a real collector.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from synth_ai import __version__

from .models import LLMCallRecord
from .settings import otlp_configured

logger = logging.getLogger("synth_ai.tracing_v3")


def _ns(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000_000)


def provider_from_environment(
    service_name: str = "synth-ai-task-app", *, set_global: bool = False
) -> TracerProvider | None:
    """A provider exporting over OTLP when an endpoint is configured; None otherwise."""
    if not otlp_configured():
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the exporter is missing: "
            "install synth-ai[otlp] to export spans"
        )
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def chat_span_attributes(record: LLMCallRecord) -> dict[str, Any]:
    """GenAI semantic-convention attributes of one chat call (unset values left out)."""
    params = record.request_params
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": record.provider or "openai",
        "gen_ai.system": record.provider or "openai",
        "gen_ai.request.model": record.model_name,
        "gen_ai.response.model": params.get("response_model") or record.model_name,
        "gen_ai.request.temperature": params.get("temperature"),
        "gen_ai.request.max_tokens": params.get("max_tokens")
        or params.get("max_completion_tokens"),
        "gen_ai.response.id": params.get("response_id"),
        "gen_ai.usage.input_tokens": record.usage.input_tokens,
        "gen_ai.usage.output_tokens": record.usage.output_tokens,
        "gen_ai.response.finish_reasons": [record.finish_reason] if record.finish_reason else None,
    }
    return {key: value for key, value in attributes.items() if value is not None}


class OtelBridge:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("synth_ai.tracing_v3", __version__)

    def start_rollout(self, session_id: str, attributes: dict[str, Any]) -> Span:
        clean = {k: v for k, v in attributes.items() if isinstance(v, str | int | float | bool)}
        return self.tracer.start_span(
            "rollout",
            kind=SpanKind.INTERNAL,
            attributes={"synth_ai.session_id": session_id, **clean},
        )

    def record_chat(self, parent: Span, record: LLMCallRecord) -> Span:
        span = self.tracer.start_span(
            f"chat {record.model_name}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes=chat_span_attributes(record),
            start_time=_ns(record.started_at),
        )
        span.end(end_time=_ns(record.completed_at))
        return span

    @staticmethod
    def end_rollout(span: Span, outcome_reward: float | None, error: str | None) -> None:
        if outcome_reward is not None:
            span.set_attribute("synth_ai.outcome_reward", outcome_reward)
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
