"""`synth-ai check URL`: check a running task app (any language) against the contract."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from synth_ai.eval import parse_seeds
from synth_ai.eval.verdict import PASSED, UNREACHABLE
from synth_ai.offline_policy import OFFLINE_MODEL, create_offline_policy_app
from synth_ai.task import serve_in_background
from synth_ai.task.conformance import ConformanceReport, check_conformance

from .app_target import POLICY_SCRIPT_HELP, serve_policy_script, serve_target
from .eval_report import UNANSWERED_HINT

FAILED = 1
"""A required check failed. 3 (`UNREACHABLE`, as for `eval`): nothing answers, the answers are
not a task app's, or the key is refused; one line on stderr says which."""


@click.command()
@click.argument("target", metavar="APP_OR_URL")
@click.option("--api-key", default=None, help="The app's key (default: $ENVIRONMENT_API_KEY).")
@click.option("--seeds", "seed_spec", default="0-2", show_default=True)
@click.option("--inference-url", default=None, help="A policy for the rollout checks.")
@click.option("--model", default=None)
@click.option("--offline-policy", is_flag=True, help="Use the offline stand-in policy.")
@click.option(
    "--policy-script",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=POLICY_SCRIPT_HELP,
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(
    target: str,
    api_key: str | None,
    seed_spec: str,
    inference_url: str | None,
    model: str | None,
    offline_policy: bool,
    policy_script: Path | None,
    as_json: bool,
) -> None:
    """Check a task app (a URL, or an app served in-process) against the contract.

    Exit 0 when every required check passed or was skipped, 1 when one failed, 3 when nothing
    could be checked (nothing answers, not a task app, the key refused)."""
    try:
        seeds = parse_seeds(seed_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from None
    with contextlib.ExitStack() as stack:
        url = serve_target(stack, target)
        key = api_key or os.environ.get("ENVIRONMENT_API_KEY")
        if not key:
            raise click.UsageError("pass --api-key or set ENVIRONMENT_API_KEY")
        if policy_script is not None:
            inference_url = serve_policy_script(stack, policy_script)
        elif offline_policy:
            inference_url = stack.enter_context(serve_in_background(create_offline_policy_app()))
            model = model or OFFLINE_MODEL
        report = asyncio.run(
            check_conformance(url, key, seeds=seeds, inference_url=inference_url, model=model)
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    if report.stopped is not None:
        click.echo(f"check: {report.stopped}", err=True)
        raise SystemExit(UNREACHABLE)
    if not as_json:
        print_report(report)
    raise SystemExit(PASSED if report.passed else FAILED)


MARKS = {"pass": "[green]pass[/green]", "skipped": "[yellow]skipped[/yellow]"}


def print_report(report: ConformanceReport) -> None:
    """The table, then one verdict line that names what failed and what was skipped."""
    table = Table(title=f"contract checks for {report.url}")
    for column in ("check", "result", "ms", "detail"):
        table.add_column(column)
    for item in report.checks:
        mark = MARKS.get(item.status) or (
            "[red]FAIL[/red]" if item.required else "[yellow]warn[/yellow]"
        )
        ms = "-" if item.latency_ms is None else f"{item.latency_ms:.0f}"
        table.add_row(item.name, mark, ms, Text(item.detail))  # Text: a detail is not markup
    Console(soft_wrap=True).print(table)
    verdict = (
        "all required checks passed" if report.passed else ("failed: " + ", ".join(report.failures))
    )
    if report.skipped:
        verdict += f" (skipped: {', '.join(report.skipped)})"
    if report.unanswered is not None:
        hint = f" ({UNANSWERED_HINT})" if report.unanswered else ""
        click.echo(
            f"the stand-in policy could not answer {report.unanswered} of its "
            f"{report.policy_calls} call(s){hint}"
        )
    click.echo(verdict)
