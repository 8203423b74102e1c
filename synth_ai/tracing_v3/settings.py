"""Tracing switches read from the environment (DESIGN.md 4)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB_PATH = Path("traces/v3/synth_ai.db")
SFT_DIR_VARS = ("TASKAPP_SFT_OUTPUT_DIR", "SFT_OUTPUT_DIR")

ENABLED_VAR = "TASKAPP_TRACING_ENABLED"
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
DB_VAR = "TASKAPP_TRACE_DB"
_TRUE = {"1", "true", "yes", "on"}


def tracing_enabled_from_environment() -> bool:
    return os.environ.get(ENABLED_VAR, "").strip().lower() in _TRUE


def sft_dir_from_environment() -> Path | None:
    """Where SFT lines go per LLM call: `TASKAPP_SFT_OUTPUT_DIR`, else `SFT_OUTPUT_DIR`."""
    for name in SFT_DIR_VARS:
        if os.environ.get(name):
            return Path(os.environ[name])
    return None


def trace_db_from_environment() -> Path:
    return Path(os.environ.get(DB_VAR) or DEFAULT_DB_PATH)


def otlp_configured() -> bool:
    """Whether the standard variables name an OTLP endpoint (checked without importing OTel)."""
    return any(os.environ.get(name) for name in OTLP_ENDPOINT_VARS)
