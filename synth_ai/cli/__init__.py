"""The `synth-ai` command line: one module per command group, imported only when run.

`synth-ai --help` lists the commands from the table below without importing them, so it stays
fast however heavy a command's imports are (the task framework, Modal, rich).
"""

from __future__ import annotations

import logging
from importlib import import_module

import click

from synth_ai import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "synth_ai.cli.serve:serve",
        "Serve the task app APP: a registered name, a file (app.py) or module:attribute.",
    ),
    "demo": (
        "synth_ai.cli.demo:demo",
        "Serve the math app, a policy and a jobs server on loopback; evaluate 50 seeds live, "
        "then optimize the app's prompt.",
    ),
    "traces": ("synth_ai.cli.traces:traces", "Inspect and export recorded session traces."),
    "jobs": ("synth_ai.cli.jobs:jobs", "Job events: serve them, and follow jobs live."),
    "deploy": ("synth_ai.cli.deploy:deploy", "Deploy the task app registered as APP."),
    "eval": (
        "synth_ai.cli.eval:eval_command",
        "Roll out SEEDS on a task app (a URL, or a registered app served in-process).",
    ),
    "optimize": (
        "synth_ai.cli.optimize:optimize",
        "Improve a prompt against a task app with GEPA (the published prompt-learning TOML).",
    ),
    "train": (
        "synth_ai.cli.optimize:train",
        "Published alias: `train --type prompt_learning --config CONFIG.toml` is `optimize`.",
    ),
    "policy": (
        "synth_ai.cli.policy:policy",
        "Policies to roll out with, served locally.",
    ),
    "init": (
        "synth_ai.cli.init:init",
        "Create NAME/: a multi-turn task app, its tests, pyproject.toml and a README.",
    ),
    "apps": (
        "synth_ai.cli.apps:apps",
        "List the registered task apps (installed entry points and built-ins).",
    ),
    "check": (
        "synth_ai.cli.check:check",
        "Check a task app (a URL, or an app served in-process) against the contract.",
    ),
}
"""name -> (module:attribute, the one-line help `--help` shows)."""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> object:
        """Any command: an environment variable its settings refuse is one line and exit 2."""
        try:
            return super().invoke(ctx)
        except ValueError as exc:
            from synth_ai.settings import SettingsError  # here: `--help` never loads pydantic

            if isinstance(exc, SettingsError):
                raise BadSetting(str(exc)) from None
            raise


class BadSetting(click.ClickException):
    exit_code = 2


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synth-ai")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """Write, serve and evaluate task apps."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)


__all__ = ["main"]
