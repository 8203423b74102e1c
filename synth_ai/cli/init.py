"""`synth-ai init NAME`: scaffold a task-app project that passes its own tests and scores."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("init")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Where the project folder goes.",
)
def init(name: str, parent: Path) -> None:
    """Create NAME/: a multi-turn task app, its tests, pyproject.toml and a README.

    The app uses tools; its tests roll out with a scripted stand-in policy
    (`policy_script.py`); pyproject.toml depends on synth-ai as it is installed here."""
    from synth_ai.scaffold import ProjectExists, create_project

    try:
        root = create_project(name, parent)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    except ProjectExists as exc:
        raise click.ClickException(f"{exc}; nothing was written") from None
    module = name.replace("-", "_")
    click.echo(f"created {root}; next, from that folder:")
    click.echo(f"  cd {root}")
    click.echo("  pip install -e '.[dev]'")
    click.echo("  pytest")
    click.echo(f"  synth-ai check {module}.py --policy-script policy_script.py")
