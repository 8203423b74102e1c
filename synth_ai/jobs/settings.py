"""Streaming knobs, read from the environment (DESIGN.md 5) with sensible defaults."""

from __future__ import annotations

from pydantic import Field

from synth_ai.settings import EnvironmentSettings

from .artifact_index import ArtifactLimits

_MAX = 2**53


class StreamSettings(EnvironmentSettings):
    """The jobs server's limits and timings; each field's alias is its environment variable."""

    heartbeat_s: float = Field(
        default=20.0, validation_alias="SSE_HEARTBEAT_SECS", ge=0.05, le=3600
    )
    ring_events: int = Field(default=1000, validation_alias="SSE_RING_BUFFER_EVENTS", ge=1, le=_MAX)
    ring_bytes: int = Field(
        default=4 * 1024 * 1024, validation_alias="SSE_RING_BUFFER_BYTES", ge=1, le=_MAX
    )
    """Per job: the replay ring holds at most this many bytes of frames."""
    ring_total_bytes: int = Field(
        default=256 * 1024 * 1024, validation_alias="SSE_RING_BUFFER_TOTAL_BYTES", ge=1, le=_MAX
    )
    """Per process: the rings of all hot jobs together; past it the idlest drop theirs."""
    ring_window_s: float | None = Field(
        default=None, validation_alias="SSE_RING_BUFFER_WINDOW_SECS", ge=0.001, le=86_400
    )
    max_metric_hz: float = Field(default=4.0, validation_alias="SSE_MAX_METRIC_HZ", ge=0, le=10_000)
    max_clients_per_job: int = Field(
        default=256, validation_alias="SSE_MAX_CLIENTS_PER_JOB", ge=1, le=_MAX
    )
    max_clients: int = Field(default=1024, validation_alias="SSE_MAX_CLIENTS", ge=1, le=_MAX)
    """Open streams per process; below the connection cap (2048) so API calls still get in."""
    max_clients_per_tenant: int = Field(
        default=256, validation_alias="SSE_MAX_CLIENTS_PER_TENANT", ge=1, le=_MAX
    )
    max_artifact_bytes: int = Field(
        default=256 * 1024 * 1024, validation_alias="SYNTH_JOBS_MAX_ARTIFACT_BYTES", ge=1, le=_MAX
    )
    """One artifact upload (the body limit of its PUT)."""
    max_artifacts: int = Field(
        default=100, validation_alias="SYNTH_JOBS_MAX_ARTIFACTS", ge=1, le=_MAX
    )
    """Artifacts (distinct names) per job; replacing one by name does not count again."""
    max_job_artifact_bytes: int = Field(
        default=4 * 1024**3, validation_alias="SYNTH_JOBS_MAX_JOB_ARTIFACT_BYTES", ge=1, le=_MAX
    )
    max_owner_artifact_bytes: int = Field(
        default=32 * 1024**3, validation_alias="SYNTH_JOBS_MAX_TENANT_ARTIFACT_BYTES", ge=1, le=_MAX
    )
    """All artifacts of one tenant's jobs (the operator's own jobs count as one owner)."""

    @property
    def artifact_limits(self) -> ArtifactLimits:
        return ArtifactLimits(
            self.max_artifacts, self.max_job_artifact_bytes, self.max_owner_artifact_bytes
        )

    subscriber_buffer: int = Field(
        default=1024, validation_alias="SSE_SUBSCRIBER_BUFFER", ge=1, le=1_000_000
    )
    window_bytes: int = Field(
        default=8 * 1024 * 1024, validation_alias="SSE_SUBSCRIBER_BUFFER_BYTES", ge=1, le=_MAX
    )
    """Per job: the live window its streams read from holds at most this many bytes of frames
    (a stream further behind is told to resume), and metrics held back by the rate as many."""
    max_metric_names: int = Field(
        default=256, validation_alias="SSE_MAX_METRIC_NAMES", ge=1, le=1_000_000
    )
    """Per job: metric names whose rate is tracked, least recently sent out."""
    end_grace_s: float = Field(default=1.0, validation_alias="SSE_END_GRACE_SECS", ge=0, le=3600)
    send_timeout_s: float = Field(
        default=30.0, validation_alias="SSE_SEND_TIMEOUT_SECS", ge=0.01, le=3600
    )
    retry_ms: int = Field(default=2000, validation_alias="SSE_RETRY_MS", ge=0, le=3_600_000)
    replay_timeout_s: float = Field(
        default=10.0, validation_alias="SSE_REPLAY_TIMEOUT_SECS", ge=0.01, le=3600
    )
    """How long a stream waits for one page of the log before telling its client to resume."""
    token_ttl_s: float = Field(
        default=12 * 3600.0, validation_alias="SSE_TOKEN_TTL_SECS", ge=1, le=30 * 86_400
    )
    """Long enough for a browser to follow a long job, reconnects included."""
    token_secret: bytes | None = Field(
        default=None, validation_alias="SSE_TOKEN_SECRET", repr=False
    )
    """None: the secret kept with the job database (made once), shared by every server on it."""
    max_buses: int = Field(
        default=256, validation_alias="SYNTH_JOBS_MAX_HOT_JOBS", ge=1, le=1_000_000
    )
    """Jobs kept hot (bus and ring in memory); the idlest beyond it are served from the log."""
    lease_s: float = Field(default=30.0, validation_alias="SYNTH_JOBS_LEASE_SECS", ge=0.3, le=3600)
    """A server-run job whose server stops renewing its lease this long is failed."""
