"""The task-app client's old path (0.2.24's and this project's before 0.3); the client lives in
`synth_ai.client`, and reading answers in `answers.py`."""

from synth_ai.client.task_app import TaskAppClient

from .answers import (
    EXCERPT_CHARS,
    IDEMPOTENCY_KEY,
    IDEMPOTENT,
    LOCKED_OUT,
    NOT_SENT,
    NOTHING_RAN,
    RETRY_AFTER_CAP_S,
    RETRYABLE,
    TaskAppClientError,
    answer_of,
    decoded,
    error_from_response,
    excerpt,
    retry_after_seconds,
)
from .contracts import DEFAULT_OPS, every_generation

__all__ = [
    "DEFAULT_OPS",
    "EXCERPT_CHARS",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENT",
    "LOCKED_OUT",
    "NOTHING_RAN",
    "NOT_SENT",
    "RETRYABLE",
    "RETRY_AFTER_CAP_S",
    "TaskAppClient",
    "TaskAppClientError",
    "answer_of",
    "decoded",
    "error_from_response",
    "every_generation",
    "excerpt",
    "retry_after_seconds",
]
