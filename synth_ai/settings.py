"""Settings read from the environment: one typed layer (pydantic-settings) for every component.

Each component declares its variables as a subclass of `EnvironmentSettings`, one field per
variable (the alias is the variable's name), with its type and range. `from_environment()` reads
them at startup and refuses a bad value with `SettingsError`, one line naming the variable, so a
value such as `SSE_HEARTBEAT_SECS=0` stops the server before it serves rather than failing every
request later. The README's table of environment variables lists them all.
"""

from __future__ import annotations

from typing import Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

_SECRET_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD")
_SHOWN_CHARS = 40


class SettingsError(ValueError):
    """An environment variable holds a value its setting refuses; the message names it."""


class EnvironmentSettings(BaseSettings):
    """Frozen settings; each field's alias is its variable, and the field name works in code."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    @classmethod
    def from_environment(cls) -> Self:
        """The settings as the environment sets them (defaults for unset or empty variables)."""
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line per refused variable: its name, why, and its value unless it may be a secret."""
    lines = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        line = f"{name}: {error['msg']}"
        value = error.get("input")
        if isinstance(value, str) and not any(word in name.upper() for word in _SECRET_WORDS):
            shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
            line += f" (got {shown!r})"
        lines.append(line)
    return "; ".join(lines)
