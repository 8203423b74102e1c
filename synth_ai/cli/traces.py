"""`synth-ai traces ...`: list, show and export what the trace store holds."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from synth_ai.tracing_v3 import TraceReader, write_sft_jsonl
from synth_ai.tracing_v3.settings import trace_db_from_environment

db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Trace DB (default: $TASKAPP_TRACE_DB or traces/v3/synth_ai.db).",
)


def _reader(db_path: Path | None) -> TraceReader:
    path = db_path or trace_db_from_environment()
    if not path.is_file():
        raise click.ClickException(f"no trace database at {path}")
    return TraceReader(path)


@click.group()
def traces() -> None:
    """Inspect and export recorded session traces."""


@traces.command("list")
@db_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--min-reward", type=float, default=None, help="Only sessions scoring at least this.")
@click.option("--model", default=None, help="Only sessions that called this model.")
def list_sessions(
    db_path: Path | None, limit: int, min_reward: float | None, model: str | None
) -> None:
    """List sessions, newest first."""
    rows = _reader(db_path).list_sessions(limit=limit, min_reward=min_reward, model=model)
    table = Table(title=f"{len(rows)} session(s)")
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
def show(session_id: str, db_path: Path | None) -> None:
    """Print one whole session as JSON."""
    trace = _reader(db_path).load_session(session_id)
    if trace is None:
        raise click.ClickException(f"no session {session_id!r}")
    click.echo(json.dumps(trace.to_json(), indent=2, ensure_ascii=False))


@traces.command("export-sft")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option("--min-reward", type=float, default=None, help="Only sessions scoring at least this.")
@click.option("--model", default=None, help="Only calls to this model.")
def export_sft(
    out: Path, db_path: Path | None, min_reward: float | None, model: str | None
) -> None:
    """Write OpenAI chat fine-tuning JSONL from recorded LLM calls."""
    reader = _reader(db_path)
    count = write_sft_jsonl(
        reader.iter_sessions(min_reward=min_reward, model=model),
        out,
        min_reward=min_reward,
        model=model,
    )
    click.echo(f"wrote {count} example(s) to {out}")
