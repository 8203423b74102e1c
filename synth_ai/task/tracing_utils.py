"""0.2.24's tracing helpers for task apps, over this project's tracing settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from synth_ai.tracing_v3.settings import (
    TracingSettings,
    sft_dir_from_environment,
    trace_db_from_environment,
)


def tracing_env_enabled(default: bool = False) -> bool:
    """`TASKAPP_TRACING_ENABLED` as a bool; `default` when it is unset or not a boolean."""
    try:
        settings = TracingSettings.from_environment()
    except ValueError:
        return default
    return settings.enabled if "enabled" in settings.model_fields_set else default


def resolve_tracing_db_url() -> str | None:
    """Where traces are stored: `TASKAPP_TRACE_DB`, else the default SQLite file."""
    url = trace_db_from_environment()
    return url.conninfo or str(url.path)


def build_tracer_factory(
    make_tracer: Callable[..., Any], *, enabled: bool, db_url: str | None
) -> Callable[[], Any] | None:
    """A factory calling `make_tracer(db_url=...)` when tracing is enabled, else None."""
    if not enabled:
        return None

    def factory() -> Any:
        return make_tracer(db_url=db_url) if db_url else make_tracer()

    return factory


def resolve_sft_output_dir() -> str | None:
    """`TASKAPP_SFT_OUTPUT_DIR` (else `SFT_OUTPUT_DIR`), created; None when unset or
    not creatable."""
    path = sft_dir_from_environment()
    if path is None:
        return None
    path = path.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(path)


def unique_sft_path(base_dir: str, *, run_id: str) -> Path:
    """A JSONL path for one run's SFT records, named by run and time."""
    return Path(base_dir) / f"{run_id}_{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}.jsonl"


__all__ = [
    "build_tracer_factory",
    "resolve_sft_output_dir",
    "resolve_tracing_db_url",
    "tracing_env_enabled",
    "unique_sft_path",
]
