"""Streaming knobs, read from the environment (DESIGN.md 5) with sensible defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None


@dataclass(frozen=True, slots=True)
class StreamSettings:
    heartbeat_s: float = 20.0
    ring_events: int = 1000
    ring_bytes: int = 4 * 1024 * 1024
    """Per job: the replay ring holds at most this many bytes of frames."""
    ring_window_s: float | None = None
    max_metric_hz: float = 4.0
    max_clients_per_job: int = 256
    max_clients: int = 1024
    """Open streams per process; below the connection cap (2048) so API calls still get in."""
    max_clients_per_tenant: int = 256
    max_artifact_bytes: int = 256 * 1024 * 1024
    subscriber_buffer: int = 1024
    end_grace_s: float = 1.0
    send_timeout_s: float = 30.0
    retry_ms: int = 2000
    replay_timeout_s: float = 10.0
    """How long a stream waits for one page of the log before telling its client to resume."""
    token_ttl_s: float = 12 * 3600.0
    """Long enough for a browser to follow a long job, reconnects included."""
    token_secret: bytes | None = field(default=None, repr=False)
    """None: the secret kept with the job database (made once), shared by every server on it."""
    max_buses: int = 256
    """Jobs kept hot (bus and ring in memory); the idlest beyond it are served from the log."""

    @classmethod
    def from_environment(cls) -> StreamSettings:
        window = os.environ.get("SSE_RING_BUFFER_WINDOW_SECS", "").strip()
        secret = os.environ.get("SSE_TOKEN_SECRET", "").encode()
        ttl = _number("SSE_TOKEN_TTL_SECS", 12 * 3600.0)
        return cls(
            heartbeat_s=_number("SSE_HEARTBEAT_SECS", 20.0),
            ring_events=int(_number("SSE_RING_BUFFER_EVENTS", 1000)),
            ring_bytes=int(_number("SSE_RING_BUFFER_BYTES", 4 * 1024 * 1024)),
            ring_window_s=float(window) if window else None,
            max_metric_hz=_number("SSE_MAX_METRIC_HZ", 4.0),
            max_clients_per_job=int(_number("SSE_MAX_CLIENTS_PER_JOB", 256)),
            max_clients=int(_number("SSE_MAX_CLIENTS", 1024)),
            max_clients_per_tenant=int(_number("SSE_MAX_CLIENTS_PER_TENANT", 256)),
            max_artifact_bytes=int(_number("SYNTH_JOBS_MAX_ARTIFACT_BYTES", 256 * 1024 * 1024)),
            end_grace_s=_number("SSE_END_GRACE_SECS", 1.0),
            token_ttl_s=ttl,
            token_secret=secret or None,
        )
