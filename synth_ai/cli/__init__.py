"""The `synth-ai` command line: one module per command group."""

from __future__ import annotations

import logging

import click

from synth_ai import __version__

from .check import check
from .demo import demo
from .deploy import deploy
from .eval import eval_command
from .jobs import jobs
from .serve import serve
from .traces import traces


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synth-ai")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """Write, serve and evaluate task apps."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)


main.add_command(serve)
main.add_command(demo)
main.add_command(traces)
main.add_command(jobs)
main.add_command(deploy)
main.add_command(eval_command)
main.add_command(check)

__all__ = ["main"]
