"""The terminal side of evaluations: a progress bar and the summary table."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from synth_ai.eval import EvalSummary


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]eval[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("mean reward {task.fields[mean]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3f}{unit}"


def print_summary(console: Console, summary: EvalSummary, job_id: str, results: str | None) -> None:
    table = Table(title="evaluation summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("job", job_id)
    table.add_row(
        "seeds",
        f"{summary.completed} of {summary.total}" + (" (canceled)" if summary.canceled else ""),
    )
    table.add_row("mean reward", _fmt(summary.mean_reward))
    table.add_row("success rate", _fmt(summary.success_rate))
    table.add_row(
        "latency p50 / p95",
        f"{_fmt(summary.p50_latency_s, 's')} / {_fmt(summary.p95_latency_s, 's')}",
    )
    table.add_row(
        "infrastructure errors",
        f"{summary.infra_errors} (not in the mean)" if summary.infra_errors else "0",
    )
    table.add_row("task errors", str(summary.task_errors))
    if summary.errors_by_kind:
        table.add_row(
            "errors by kind", ", ".join(f"{k}: {v}" for k, v in summary.errors_by_kind.items())
        )
    for message, count in summary.error_messages.items():  # each distinct error once
        table.add_row(f"  x{count}", message)
    if results:
        table.add_row("results", results)
    console.print(table)
