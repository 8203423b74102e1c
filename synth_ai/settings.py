"""Settings read from the environment: one typed layer for every component.

Each component declares its variables as a subclass of `EnvironmentSettings`, one field per
variable (the alias is the variable's name, or `AliasChoices` of names tried in order), with its
type and range. `from_environment()` reads them at startup and refuses a bad value with
`SettingsError`, one line naming the variable, so a value such as `SSE_HEARTBEAT_SECS=0` stops
the server before it serves rather than failing every request later. An empty variable means the
default. Built in code (`StreamSettings(end_grace_s=0.05)`), settings take their defaults and
never read the environment. The README's table of environment variables lists them all.

Why not pydantic-settings: importing it costs about 28 ms of every process start (measured in
issue 14: its sources load every provider, from dotenv and TOML to the CLI and cloud secret
stores), a seventh of the cold-start budget, and these settings need only what pydantic itself
does once each variable's string is looked up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import AliasChoices, BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

_SECRET_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD")
_SHOWN_CHARS = 40


class SettingsError(ValueError):
    """An environment variable holds a value its setting refuses; the message names it."""


class EnvironmentSettings(BaseModel):
    """Frozen settings; each field's alias is its variable, and the field name works in code."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings as the environment (or `environ`) sets them: defaults for unset or
        empty variables; for a field with several variables, the first one set wins."""
        source = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for field in cls.model_fields.values():
            for variable in variables(field):
                value = source.get(variable)
                if value:
                    values[variable] = value
                    break
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None


def variables(field: FieldInfo) -> list[str]:
    """The environment variables a field reads, in the order they are tried."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    raise TypeError(f"a setting needs its variable as validation_alias, not {alias!r}")


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
