"""Tracing switches read from the environment (DESIGN.md 4)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field

from synth_ai.settings import EnvironmentSettings
from synth_ai.storage.url import DatabaseURL, DatabaseURLError, parse_database_url

DEFAULT_DB_PATH = Path("traces/v3/synth_ai.db")
SFT_DIR_VARS = ("TASKAPP_SFT_OUTPUT_DIR", "SFT_OUTPUT_DIR")

ENABLED_VAR = "TASKAPP_TRACING_ENABLED"
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
DB_VAR = "TASKAPP_TRACE_DB"


class TracingSettings(EnvironmentSettings):
    """Whether and where a task app traces; each field's alias is its environment variable."""

    enabled: bool = Field(default=False, validation_alias=ENABLED_VAR)
    """`1/true/yes/on` or `0/false/no/off`; anything else is refused, not read as off."""
    trace_db: str | None = Field(default=None, validation_alias=DB_VAR, max_length=4096)
    sft_dir: Path | None = Field(default=None, validation_alias=AliasChoices(*SFT_DIR_VARS))
    otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices(*OTLP_ENDPOINT_VARS)
    )

    def store_url(self) -> DatabaseURL:
        """`TASKAPP_TRACE_DB` (a path, `sqlite:///path` or `postgresql://...`), else the default
        file; a scheme no engine has raises `DatabaseURLError` naming the variable."""
        if not self.trace_db:
            return parse_database_url(DEFAULT_DB_PATH)
        try:
            return parse_database_url(self.trace_db)
        except DatabaseURLError as exc:
            raise DatabaseURLError(f"{DB_VAR}: {exc}") from None


def tracing_enabled_from_environment() -> bool:
    return TracingSettings.from_environment().enabled


def sft_dir_from_environment() -> Path | None:
    """Where SFT lines go per LLM call: `TASKAPP_SFT_OUTPUT_DIR`, else `SFT_OUTPUT_DIR`."""
    return TracingSettings.from_environment().sft_dir


def trace_db_from_environment() -> DatabaseURL:
    return TracingSettings.from_environment().store_url()


def trace_location(value: DatabaseURL | str | os.PathLike[str]) -> DatabaseURL:
    """A store's location given in code: a URL, a path, or one already parsed."""
    return value if isinstance(value, DatabaseURL) else parse_database_url(value)


def otlp_configured() -> bool:
    """Whether the standard variables name an OTLP endpoint (checked without importing OTel)."""
    return TracingSettings.from_environment().otlp_endpoint is not None
