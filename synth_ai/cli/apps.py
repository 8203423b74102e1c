"""`synth-ai apps`: the task apps this install can serve by name."""

from __future__ import annotations

import click

from synth_ai.task.registry import list_task_apps


@click.command("apps")
def apps() -> None:
    """List the registered task apps (installed entry points and built-ins)."""
    entries = list_task_apps()
    if not entries:
        click.echo("no task apps registered; any app.py or module:attribute can be served")
        return
    width = max(len(entry.app_id) for entry in entries)
    for entry in entries:
        aliases = f" (also {', '.join(entry.aliases)})" if entry.aliases else ""
        click.echo(f"{entry.app_id:<{width}}  {entry.description}{aliases}".rstrip())
