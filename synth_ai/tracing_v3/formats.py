"""The forms a rollout response's `trace` takes: `compact`, `full` or `structured`."""

from __future__ import annotations

from typing import Any, Literal

from .models import EnvironmentEvent, LMCAISEvent, SessionTrace

TRACE_VERSION = 3
TraceFormat = Literal["compact", "full", "structured"]


def _event_summary(event: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {"event_type": event.event_type}
    if isinstance(event, LMCAISEvent):
        summary |= {
            "model_name": event.model_name,
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
            "latency_ms": event.latency_ms,
        }
    elif isinstance(event, EnvironmentEvent):
        summary |= {"reward": event.reward, "terminated": event.terminated}
    return summary


def compact_trace(trace: SessionTrace) -> dict[str, Any]:
    """Counts, per-step event summaries and the outcome: enough to eyeball, cheap to send."""
    return {
        "version": TRACE_VERSION,
        "format": "compact",
        "session_id": trace.session_id,
        "created_at": trace.created_at.isoformat(),
        "metadata": trace.metadata,
        "num_events": len(trace.event_history),
        "num_messages": len(trace.markov_blanket_message_history),
        "outcome_reward": trace.outcome_reward.total_reward if trace.outcome_reward else None,
        "timesteps": [
            {
                "step_id": step.step_id,
                "step_index": step.step_index,
                "turn_number": step.turn_number,
                "events": [_event_summary(event) for event in step.events],
                "num_messages": len(step.markov_blanket_messages),
            }
            for step in trace.session_time_steps
        ],
    }


def render_trace(trace: SessionTrace, trace_format: TraceFormat) -> dict[str, Any]:
    if trace_format == "compact":
        return compact_trace(trace)
    if trace_format == "structured":
        return {"version": TRACE_VERSION, "session_trace": trace.to_json()}
    return {"version": TRACE_VERSION, "format": "full", **trace.to_json()}
