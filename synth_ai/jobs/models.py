"""Job events' wire models, where the jobs server has always imported them; they live in
`synth_ai.job_events`, which the client reads them from too."""

from synth_ai.job_events.models import (
    MAX_MESSAGE_CHARS,
    SSE_NAMES,
    WIRE_KEYS,
    EventIn,
    JobEvent,
    JobState,
    finite_json,
    sse_name,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "SSE_NAMES",
    "WIRE_KEYS",
    "EventIn",
    "JobEvent",
    "JobState",
    "finite_json",
    "sse_name",
]
