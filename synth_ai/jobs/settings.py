"""Streaming knobs, read from the environment (DESIGN.md 5) with sensible defaults."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field


def _number(name: str, default: float, low: float = 1, high: float = 2**53) -> float:
    """A variable's value, refused at startup (naming the variable) unless within [low, high]:
    a value such as SSE_HEARTBEAT_SECS=0 would otherwise fail every stream later."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN fails this too
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], not {raw[:40]!r}")
    return value


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
    lease_s: float = 30.0
    """A server-run job whose server stops renewing its lease this long is failed."""

    @classmethod
    def from_environment(cls) -> StreamSettings:
        window = os.environ.get("SSE_RING_BUFFER_WINDOW_SECS", "").strip()
        window_s = _number("SSE_RING_BUFFER_WINDOW_SECS", 0, 0.001, 86_400) if window else None
        secret = os.environ.get("SSE_TOKEN_SECRET", "").encode()
        ttl = _number("SSE_TOKEN_TTL_SECS", 12 * 3600.0, 1, 30 * 86_400)
        return cls(
            heartbeat_s=_number("SSE_HEARTBEAT_SECS", 20.0, 0.05, 3600),
            ring_events=int(_number("SSE_RING_BUFFER_EVENTS", 1000)),
            ring_bytes=int(_number("SSE_RING_BUFFER_BYTES", 4 * 1024 * 1024)),
            ring_window_s=window_s,
            max_metric_hz=_number("SSE_MAX_METRIC_HZ", 4.0, 0, 10_000),
            max_clients_per_job=int(_number("SSE_MAX_CLIENTS_PER_JOB", 256)),
            max_clients=int(_number("SSE_MAX_CLIENTS", 1024)),
            max_clients_per_tenant=int(_number("SSE_MAX_CLIENTS_PER_TENANT", 256)),
            max_artifact_bytes=int(_number("SYNTH_JOBS_MAX_ARTIFACT_BYTES", 256 * 1024 * 1024)),
            end_grace_s=_number("SSE_END_GRACE_SECS", 1.0, 0, 3600),
            token_ttl_s=ttl,
            lease_s=_number("SYNTH_JOBS_LEASE_SECS", 30.0, 0.3, 3600),
            token_secret=secret or None,
        )
