"""Reading `KEY=VALUE` env files for the CLI; values are never printed."""

from __future__ import annotations

import os
from pathlib import Path

import click


def read_env_file(path: Path) -> dict[str, str]:
    """Parse `KEY=VALUE` lines (`export ` prefix, quotes and `#` comments allowed)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise click.BadParameter(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load_env_files(paths: tuple[Path, ...]) -> list[str]:
    """Apply env files to this process in order; answers the names set (never the values)."""
    names: list[str] = []
    for path in paths:
        for key, value in read_env_file(path).items():
            os.environ[key] = value
            names.append(key)
    return names
