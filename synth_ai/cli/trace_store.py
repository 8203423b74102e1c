"""Trace store locations as the command line takes them (a path or a URL), refused in one line
when they name no engine, or one this install lacks, before anything is served or made."""

from __future__ import annotations

from pathlib import Path

import click

from synth_ai.storage import DatabaseURL, DatabaseURLError, open_database, parse_database_url
from synth_ai.storage.url import SCHEME
from synth_ai.tracing_v3.settings import DEFAULT_DB_PATH, trace_db_from_environment


def parse_location(value: str, source: str) -> DatabaseURL:
    """`value` as a store location, or a usage error naming where it came from."""
    try:
        return parse_database_url(value)
    except DatabaseURLError as exc:
        raise click.UsageError(f"{source}: {exc}") from None


def location_from_environment() -> DatabaseURL:
    """`TASKAPP_TRACE_DB`, else the default file."""
    try:
        return trace_db_from_environment()
    except DatabaseURLError as exc:
        raise click.UsageError(str(exc)) from None


def require_engine(url: DatabaseURL) -> None:
    """Whether this install can open `url`: PostgreSQL needs the `postgres` extra."""
    if url.engine != "postgresql":
        return
    from synth_ai.storage.postgres import PostgresUnavailable

    try:
        open_database(url).close()
    except PostgresUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def trace_target(value: str) -> tuple[DatabaseURL, Path | None]:
    """`--trace DIR`: SQLite at DIR/synth_ai.db (the default store's file name) and SFT lines
    in DIR (made if missing);
    `--trace postgresql://...`: that database, and no SFT lines."""
    if SCHEME.match(value):
        url = parse_location(value, "--trace")
        if url.engine != "postgresql":
            raise click.UsageError("--trace takes a directory or a postgresql:// URL")
        return url, None
    directory = Path(value)
    if directory.exists() and not directory.is_dir():
        raise click.UsageError(f"--trace: {directory} is a file, not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    return parse_database_url(directory / DEFAULT_DB_PATH.name), directory
