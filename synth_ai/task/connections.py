"""A cap on open connections, and a file-descriptor limit large enough to hold it.

Every open connection costs a file descriptor. Without a cap, clients that open connections and
stay idle or slow could use them all up, and then the process can no longer accept anyone, open
its trace database or call an inference endpoint. uvicorn's `limit_concurrency` answers 503 to
requests once this many connections (or requests in flight) are open; the soft
`RLIMIT_NOFILE` is raised at start so the cap, plus what the app itself opens, fits.
"""

from __future__ import annotations

import logging

from pydantic import Field

from synth_ai.settings import EnvironmentSettings

logger = logging.getLogger("synth_ai.task.serving")

DEFAULT_MAX_CONNECTIONS = 2048
MAX_CONNECTIONS_ENV = "SYNTH_MAX_CONNECTIONS"
FD_HEADROOM = 1024
"""Descriptors beyond the cap for what the app opens itself: outbound pools, trace files."""


class ConnectionSettings(EnvironmentSettings):
    max_connections: int = Field(
        default=DEFAULT_MAX_CONNECTIONS, validation_alias=MAX_CONNECTIONS_ENV, ge=1, le=1_000_000
    )


def resolve_max_connections(value: int | None = None) -> int:
    """The cap: `value`, else `$SYNTH_MAX_CONNECTIONS`, else 2048."""
    if value is None:
        return ConnectionSettings.from_environment().max_connections
    if value < 1:
        raise ValueError(f"max_connections: the connection cap must be at least 1, not {value}")
    return value


def raise_open_file_limit(max_connections: int) -> int | None:
    """Raise the soft `RLIMIT_NOFILE` to the hard limit (at least cap + headroom if unlimited).

    Answers the soft limit now in force (None where the platform has no rlimits); warns when
    even the hard limit cannot hold the cap plus headroom.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + FD_HEADROOM
    target = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        for candidate in (target, min(needed, target)):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (candidate, hard))
            except (ValueError, OSError):  # macOS refuses more than OPEN_MAX
                continue
            soft = candidate
            break
    if soft != resource.RLIM_INFINITY and soft < needed:
        logger.warning(
            "only %d file descriptors for %d connections plus %d headroom; lower "
            "--max-connections (%s) or raise the hard limit (ulimit -Hn)",
            soft,
            max_connections,
            FD_HEADROOM,
            MAX_CONNECTIONS_ENV,
        )
    return soft


__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "MAX_CONNECTIONS_ENV",
    "raise_open_file_limit",
    "resolve_max_connections",
]
