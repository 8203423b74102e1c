"""Streaming a job's events, at its old path; it lives in `synth_ai.client`."""

from synth_ai.client.job_stream import (
    DEFAULT_RETRY_FOR_S,
    NO_KEY_CODE,
    JobStreamError,
    is_transient,
    stream_job,
)
from synth_ai.client.task_app import request_within

__all__ = [
    "DEFAULT_RETRY_FOR_S",
    "NO_KEY_CODE",
    "JobStreamError",
    "is_transient",
    "request_within",
    "stream_job",
]
