"""The terminal side of evaluations: a progress bar, the summary table, and the same report
as JSON for `eval --json`. Times are ISO 8601 in UTC."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from synth_ai.eval import EvalSummary
from synth_ai.task.access_log import iso_utc

UNANSWERED_HINT = "script the answers: --policy-script FILE"

Span = tuple[float, float]
"""When a run started and finished, in Unix seconds."""


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


def report(summary: EvalSummary, job_id: str, results: str | None, span: Span) -> dict[str, Any]:
    """The summary as one JSON-ready document."""
    return {
        "job_id": job_id,
        "started_at": iso_utc(span[0]),
        "finished_at": iso_utc(span[1]),
        "duration_s": round(span[1] - span[0], 3),
        "summary": summary.model_dump(mode="json"),
        "failed": summary.failed,
        "results": results,
    }


def print_summary(
    console: Console,
    summary: EvalSummary,
    job_id: str,
    results: str | None,
    span: Span | None = None,
) -> None:
    table = Table(title="evaluation summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("job", job_id)
    if span is not None:
        table.add_row("ran", f"{iso_utc(span[0], 'seconds')} for {span[1] - span[0]:.1f}s")
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
    in_mean = "in the mean as 0" if summary.task_errors_in_mean else "not in the mean"
    table.add_row(
        "task errors", f"{summary.task_errors} ({in_mean})" if summary.task_errors else "0"
    )
    if summary.unanswered is not None:
        table.add_row(
            "stand-in policy",
            f"could not answer {summary.unanswered} of {summary.policy_calls} call(s)"
            + (f" ({UNANSWERED_HINT})" if summary.unanswered else ""),
        )
    if summary.errors_by_kind:
        table.add_row(
            "errors by kind", ", ".join(f"{k}: {v}" for k, v in summary.errors_by_kind.items())
        )
    for message, count in summary.error_messages.items():  # each distinct error once
        table.add_row(f"  x{count}", message)
    if results:
        table.add_row("results", results)
    console.print(table)
