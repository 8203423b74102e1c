"""Tracing switches read from the environment (DESIGN.md 4)."""

from __future__ import annotations

import os
from pathlib import Path

from .store import DEFAULT_DB_PATH

ENABLED_VAR = "TASKAPP_TRACING_ENABLED"
DB_VAR = "TASKAPP_TRACE_DB"
_TRUE = {"1", "true", "yes", "on"}


def tracing_enabled_from_environment() -> bool:
    return os.environ.get(ENABLED_VAR, "").strip().lower() in _TRUE


def trace_db_from_environment() -> Path:
    return Path(os.environ.get(DB_VAR) or DEFAULT_DB_PATH)
