"""Reading env files for the CLI with python-dotenv; values are never printed."""

from __future__ import annotations

import io
import os
from pathlib import Path

import click
from dotenv import dotenv_values
from dotenv.parser import parse_stream


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines as dotenv reads them (`export `, quotes, `#` comments, `${VAR}`); a
    line it cannot parse, or a name without a value, is refused naming the file and line."""
    text = path.read_text(encoding="utf-8")
    for binding in parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and binding.value is None):
            raise click.BadParameter(f"{path}:{binding.original.line}: expected KEY=VALUE")
    return {
        key: value
        for key, value in dotenv_values(stream=io.StringIO(text)).items()
        if value is not None
    }


def load_env_files(paths: tuple[Path, ...]) -> list[str]:
    """Apply env files to this process in order; answers the names set (never the values)."""
    names: list[str] = []
    for path in paths:
        for key, value in read_env_file(path).items():
            os.environ[key] = value
            names.append(key)
    return names
