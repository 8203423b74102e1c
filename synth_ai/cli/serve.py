"""`synth-ai serve APP`: serve a registered task app with uvicorn.

It says what it started once it listens (a banner: the app, its URL and routes, whether a key is
needed, where traces go), then logs one line per request, as text or as JSON.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from synth_ai.task import run_task_app
from synth_ai.task.auth import configured_keys
from synth_ai.task.banner import LOG_FORMATS, print_notice, safe_location
from synth_ai.task.connections import DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_ENV
from synth_ai.task.references import AppLoadFailed, get_task_app
from synth_ai.task.registry import ConfigFactoryFailed
from synth_ai.tracing_v3.settings import (
    DB_VAR,
    DEFAULT_DB_PATH,
    ENABLED_VAR,
    SFT_DIR_VARS,
    tracing_enabled_from_environment,
)

from .env_file import load_env_files
from .trace_store import location_from_environment, require_engine, trace_target

logger = logging.getLogger("synth_ai.cli")

log_format_option = click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="The banner and one line per request: human text, or one JSON object per line.",
)
max_connections_option = click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help=f"Open connections before requests get 503 (default: ${MAX_CONNECTIONS_ENV} or "
    f"{DEFAULT_MAX_CONNECTIONS}); each live stream holds one.",
)


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
    is_flag=False,
    flag_value=str(DEFAULT_DB_PATH.parent),
    help=f"Record traces: SQLite at DIR/{DEFAULT_DB_PATH.name} and SFT JSONL in DIR (unless "
    "TASKAPP_SFT_OUTPUT_DIR names one), or to a "
    f"postgresql:// URL (a fleet's processes can share one). --trace alone: "
    f"{DEFAULT_DB_PATH.parent}, where `synth-ai traces` looks by default.",
)
@max_connections_option
@log_format_option
def serve(
    app: str,
    host: str,
    port: int,
    reload: bool,
    env_files: tuple[Path, ...],
    trace: str | None,
    max_connections: int | None,
    log_format: str,
) -> None:
    """Serve the task app APP: a registered name, a file (app.py) or module:attribute."""
    names = load_env_files(env_files)
    if trace is not None:
        url, sft_dir = trace_target(trace)
        require_engine(url)
        os.environ[ENABLED_VAR] = "1"
        os.environ[DB_VAR] = str(url.path) if url.path is not None else str(url.conninfo)
        if sft_dir is not None and not any(os.environ.get(var) for var in SFT_DIR_VARS):
            os.environ[SFT_DIR_VARS[0]] = str(sft_dir)  # a directory the environment named wins
        print_notice(f"Tracing to {safe_location(url)}", log_format)
    elif os.environ.get(DB_VAR):  # from the environment or an env file: checked as early
        url = location_from_environment()
        if tracing_enabled_from_environment():
            require_engine(url)
    if names:
        print_notice(f"Loaded from env files: {', '.join(sorted(set(names)))}", log_format)
    try:
        entry = get_task_app(app)  # a reference that names no app stops here, saying why
    except AppLoadFailed as exc:
        raise click.ClickException(str(exc)) from None
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    except ConfigFactoryFailed as exc:
        raise _factory_failed(exc) from None
    if not configured_keys():
        print_notice(
            "Warning: ENVIRONMENT_API_KEY is not set; protected routes will answer 503.",
            log_format,
            "warning",
        )
    try:
        run_task_app(
            app,
            host=host,
            port=port,
            reload=reload,
            max_connections=max_connections,
            log_format=log_format,
            env_files=entry.env_files,  # the app's own (0.2.24's field); set variables win
        )
    except ConfigFactoryFailed as exc:
        raise _factory_failed(exc) from None


def _factory_failed(exc: ConfigFactoryFailed) -> click.ClickException:
    """One line naming the app and the exception; its traceback only with `synth-ai -v`."""
    logger.debug("the config factory's traceback", exc_info=exc.__cause__)
    return click.ClickException(str(exc))
