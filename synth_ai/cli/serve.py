"""`synth-ai serve APP`: serve a registered task app with uvicorn."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from synth_ai.task import run_task_app
from synth_ai.task.auth import configured_keys
from synth_ai.task.connections import DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_ENV
from synth_ai.task.registry import ConfigFactoryFailed, get_task_app
from synth_ai.tracing_v3.settings import (
    DB_VAR,
    ENABLED_VAR,
    SFT_DIR_VARS,
    tracing_enabled_from_environment,
)

from .env_file import load_env_files
from .trace_store import location_from_environment, require_engine, trace_target

logger = logging.getLogger("synth_ai.cli")


@click.command()
@click.argument("app")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option("--reload", is_flag=True, help="Restart when source files change.")
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="KEY=VALUE file applied before the app is built (repeatable).",
)
@click.option(
    "--trace",
    metavar="DIR|URL",
    default=None,
    help="Record traces: SQLite at DIR/synth_ai.db and SFT JSONL in DIR, or to a "
    "postgresql:// URL (a fleet's processes can share one).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help=f"Open connections before requests get 503 (default: ${MAX_CONNECTIONS_ENV} or "
    f"{DEFAULT_MAX_CONNECTIONS}).",
)
def serve(
    app: str,
    host: str,
    port: int,
    reload: bool,
    env_files: tuple[Path, ...],
    trace: str | None,
    max_connections: int | None,
) -> None:
    """Serve the task app APP: a registered name, a file (app.py) or module:attribute."""
    names = load_env_files(env_files)
    if trace is not None:
        url, sft_dir = trace_target(trace)
        require_engine(url)
        os.environ[ENABLED_VAR] = "1"
        os.environ[DB_VAR] = str(url.path) if url.path is not None else str(url.conninfo)
        if sft_dir is not None:
            os.environ[SFT_DIR_VARS[0]] = str(sft_dir)
        click.echo(f"Tracing to {url}", err=True)
    elif os.environ.get(DB_VAR):  # from the environment or an env file: checked as early
        url = location_from_environment()
        if tracing_enabled_from_environment():
            require_engine(url)
    if names:
        click.echo(f"Loaded from env files: {', '.join(sorted(set(names)))}", err=True)
    try:
        get_task_app(app)  # a reference that names no app stops here, saying why
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    except ConfigFactoryFailed as exc:
        raise _factory_failed(exc) from None
    if not configured_keys():
        click.echo(
            "Warning: ENVIRONMENT_API_KEY is not set; protected routes will answer 503.", err=True
        )
    try:
        run_task_app(app, host=host, port=port, reload=reload, max_connections=max_connections)
    except ConfigFactoryFailed as exc:
        raise _factory_failed(exc) from None


def _factory_failed(exc: ConfigFactoryFailed) -> click.ClickException:
    """One line naming the app and the exception; its traceback only with `synth-ai -v`."""
    logger.debug("the config factory's traceback", exc_info=exc.__cause__)
    return click.ClickException(str(exc))
