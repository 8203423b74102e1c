"""`synth-ai traces ...`: list, show, export and serve (in a browser) what the trace store
holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from synth_ai.tracing_v3 import TraceReader, write_sft_jsonl
from synth_ai.tracing_v3.settings import DB_VAR, DEFAULT_DB_PATH

from .proxy import forwarded_allow_ips_option
from .trace_store import location_from_environment, parse_location, require_engine

db_option = click.option(
    "--db",
    "db",
    metavar="PATH|URL",
    default=None,
    help="Trace store: a SQLite file or a postgresql:// URL "
    f"(default: ${DB_VAR} or {DEFAULT_DB_PATH}, where `serve --trace` and the demo write).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else."
)


@contextmanager
def _reader(db: str | None) -> Iterator[TraceReader]:
    """The store named by --db (else the environment's); what its database refuses is a
    one-line error naming the store, never a traceback."""
    url = parse_location(db, "--db") if db else location_from_environment()
    if url.path is not None and not url.path.is_file():
        raise click.ClickException(f"no trace database at {url}")
    require_engine(url)
    reader = TraceReader(url)
    try:
        errors = reader.database.errors
        try:
            connection = reader.database.connect()  # an unreachable server fails now
        except errors as exc:
            raise click.ClickException(f"cannot read traces at {url}: {_first_line(exc)}") from None
        try:
            connection.query("SELECT 1 FROM session_traces WHERE 1 = 0")
        except errors as exc:
            raise click.ClickException(
                f"no traces at {url} ({_first_line(exc)}): a store gets its tables when a "
                "traced app first writes to it"
            ) from None
        finally:
            connection.close()
        try:
            yield reader
        except errors as exc:
            raise click.ClickException(f"cannot read traces at {url}: {_first_line(exc)}") from None
    finally:
        reader.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@click.group()
def traces() -> None:
    """Inspect and export recorded session traces."""


@traces.command("list")
@db_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--min-reward", type=float, default=None, help="Only sessions scoring at least this.")
@click.option("--model", default=None, help="Only sessions that called this model.")
@json_option
def list_sessions(
    db: str | None, limit: int, min_reward: float | None, model: str | None, as_json: bool
) -> None:
    """List sessions, newest first (times in UTC)."""
    from .traces_view import session_row

    with _reader(db) as reader:
        found = reader.list_sessions(limit=limit + 1, min_reward=min_reward, model=model)
    more = len(found) > limit  # one more than shown was asked for, to know
    rows = [session_row(row) for row in found[:limit]]
    if as_json:
        document = {"sessions": rows, "truncated": more}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    title = f"the newest {len(rows)} session(s); more exist (--limit)" if more else None
    table = Table(title=title or f"{len(rows)} session(s)")
    for column in ("session_id", "created_at", "steps", "events", "reward"):
        table.add_column(column)
    for row in rows:
        reward = row["outcome_reward"]
        table.add_row(
            row["session_id"],
            row["created_at"],
            str(row["num_timesteps"]),
            str(row["num_events"]),
            "-" if reward is None else f"{reward:g}",
        )
    Console().print(table)


@traces.command("show")
@click.argument("session_id")
@db_option
@click.option(
    "--max-chars",
    default=400,
    show_default=True,
    type=click.IntRange(min=0),
    help="Cut each text of the transcript to this many characters (0: never).",
)
@json_option
def show(session_id: str, db: str | None, max_chars: int, as_json: bool) -> None:
    """Print one session as a transcript: its turns, tool calls and rewards in time order
    (--json: the whole stored session)."""
    from .traces_view import transcript_lines

    with _reader(db) as reader:
        trace = reader.load_session(session_id)
    if trace is None:
        raise click.ClickException(f"no session {session_id!r}")
    if as_json:
        click.echo(json.dumps(trace.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(transcript_lines(trace, max_chars)))


@traces.command("export-sft")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option("--min-reward", type=float, default=None, help="Only sessions scoring at least this.")
@click.option("--model", default=None, help="Only calls to this model.")
@click.option(
    "--include-checks",
    is_flag=True,
    help="Also export the rollouts `synth-ai check` sent (left out by default).",
)
def export_sft(
    out: Path, db: str | None, min_reward: float | None, model: str | None, include_checks: bool
) -> None:
    """Write OpenAI chat fine-tuning JSONL from recorded LLM calls."""
    with _reader(db) as reader:
        count = write_sft_jsonl(
            reader.iter_sessions(min_reward=min_reward, model=model),
            out,
            min_reward=min_reward,
            model=model,
            include_checks=include_checks,
        )
    click.echo(f"wrote {count} example(s) to {out}")


@traces.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8003, show_default=True, type=click.IntRange(0, 65535))
@forwarded_allow_ips_option
def serve(db: str | None, host: str, port: int, forwarded_allow_ips: str | None) -> None:
    """Serve the trace viewer: sessions filtered by reward and model, each as a transcript,
    and SFT export. Prints a sign-in URL (single use, short-lived)."""
    from synth_ai.task.auth import PRIMARY_KEY_VAR, configured_keys
    from synth_ai.task.serving import run_app
    from synth_ai.ui import create_traces_app, sign_in_banner

    if not configured_keys():
        raise click.ClickException(
            f"the trace viewer signs people in with the operator's key: set {PRIMARY_KEY_VAR}"
        )
    with _reader(db) as reader:  # refuse a missing file or an unreachable server now
        url = reader.url
    try:
        app = create_traces_app(url)
    except ValueError as exc:  # a setting refused at startup; the message names it
        raise click.UsageError(str(exc)) from None
    click.echo(sign_in_banner(app.state.signin, host, port, "Trace viewer"))
    run_app(app, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips)
