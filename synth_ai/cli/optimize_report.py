"""What `synth-ai optimize` shows: live progress from the job's events, then the summary (seed
vs best on validation and on the test pool, the best prompt as a diff against the seed)."""

from __future__ import annotations

import difflib
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]optimize[/bold]"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("rollouts {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("best val {task.fields[best]}"),
        TimeElapsedColumn(),
        TextColumn("eta {task.fields[eta]}"),
        console=console,
        transient=True,
    )


class LiveView:
    """Feeds a progress bar from `prompt.learning.*` events (from any thread)."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("optimize", total=total, best="-", eta="-")

    def __call__(self, type: str, data: dict[str, Any]) -> None:
        if type == "prompt.learning.progress":
            eta = data.get("eta_seconds")
            self.progress.update(
                self.task,
                completed=data.get("rollouts_completed", 0),
                total=data.get("rollouts_total"),
                eta=f"{eta:.0f}s" if isinstance(eta, int | float) else "-",
            )
        elif type == "prompt.learning.gepa.new_best":
            self.progress.update(self.task, best=f"{data.get('best_score', 0):.3f}")
        elif type == "prompt.learning.validation.scored" and data.get("is_baseline"):
            self.progress.console.print(f"seed prompt: validation {data.get('accuracy', 0):.3f}")


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def prompt_diff(seed: list[dict[str, str]], best: list[dict[str, str]]) -> str:
    """The best prompt against the seed, one unified diff over `role: content` lines."""

    def lines(sections: list[dict[str, str]]) -> list[str]:
        out = []
        for section in sections:
            out.append(f"[{section['role']}]")
            out.extend(section["content"].splitlines() or [""])
        return out

    diff = difflib.unified_diff(lines(seed), lines(best), "seed", "best", lineterm="", n=2)
    return "\n".join(diff) or "(the best prompt is the seed prompt)"


def print_summary(console: Console, summary: dict[str, Any], job_id: str) -> None:
    table = Table(title=f"prompt optimization {job_id}")
    table.add_column("prompt")
    table.add_column("validation", justify="right")
    table.add_column("test pool", justify="right")
    for name, key in (("seed", "seed_score"), ("best", "best_score")):
        scores = summary.get(key) or {}
        table.add_row(name, _score(scores.get("validation")), _score(scores.get("test")))
    console.print(table)
    console.print(
        prompt_diff(
            (summary.get("seed_prompt") or {}).get("sections", []),
            (summary.get("best_prompt") or {}).get("sections", []),
        ),
        markup=False,
        highlight=False,
    )
    rollouts, tokens = summary.get("rollouts", {}), summary.get("tokens", {})
    console.print(
        f"rollouts: {rollouts.get('search')} of budget {rollouts.get('budget')} in the search, "
        f"{rollouts.get('test')} on the test pool"
    )
    spend = f"${tokens.get('spend_usd', 0):.4f}"
    unpriced = tokens.get("unpriced_models") or []
    if unpriced:
        spend += f" (no price for {', '.join(unpriced)}: tokens counted only)"
    console.print(
        f"tokens: {tokens.get('total')} (policy {_sum(tokens.get('policy'))}, "
        f"reflection {_sum(tokens.get('reflection'))}); spend {spend}"
    )
    if summary.get("reflection_failures"):
        console.print(
            f"[yellow]reflection failed {summary['reflection_failures']} time(s): "
            "see the job's warnings[/yellow]"
        )
    if summary.get("stop_reason"):
        console.print(f"stopped: {summary['stop_reason']}")
    for name, url in (summary.get("artifacts") or {}).items():
        console.print(f"{name}: {url}")


def _sum(entry: Any) -> int:
    if not isinstance(entry, dict):
        return 0
    return int(entry.get("prompt", 0)) + int(entry.get("completion", 0))


def json_report(summary: dict[str, Any], job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "seed_score": summary.get("seed_score"),
        "best_score": summary.get("best_score"),
        "best_prompt": summary.get("best_prompt"),
        "seed_prompt": summary.get("seed_prompt"),
        "rollouts": summary.get("rollouts"),
        "tokens": summary.get("tokens"),
        "stop_reason": summary.get("stop_reason"),
        "reflection_failures": summary.get("reflection_failures"),
        "canceled": summary.get("canceled"),
        "artifacts": summary.get("artifacts"),
    }
