"""How `synth-ai jobs` shows a job in the terminal: compact event lines, the live view of
`jobs watch`, the summary it ends with, and a job's snapshot. Times are ISO 8601 in UTC."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from synth_ai.client import JobsWatcher
from synth_ai.jobs import JobEvent
from synth_ai.task.access_log import iso_utc

TIME_FIELDS = ("created_at", "updated_at")


def job_record(job: dict[str, Any]) -> dict[str, Any]:
    """A job snapshot as the CLI prints it: its times in ISO 8601 UTC, not Unix seconds."""
    return {
        key: iso_utc(value, "seconds")
        if key in TIME_FIELDS and isinstance(value, int | float)
        else value
        for key, value in job.items()
    }


def status_lines(job: dict[str, Any]) -> list[str]:
    """`jobs status` for people: one `name: value` line per field of the snapshot."""
    shown = job_record(job)
    lines = [f"job {shown.get('job_id')} ({shown.get('kind')})"]
    for key, value in shown.items():
        if key in ("job_id", "kind") or value in (None, {}, []):
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        lines.append(f"  {key.replace('_', ' ')}: {text}")
    return lines


def compact_line(event: JobEvent, total: int | None = None) -> str:
    """One short line per event: `t=2025-05-01T18:22:40Z step=820 avg_reward=0.62`
    (`step=3/10` when the job's total is known)."""
    stamp = iso_utc(event.ts, "seconds")
    data = event.data
    parts = [f"t={stamp}"]
    if data.get("step") is not None:
        parts.append(f"step={data['step']}" + (f"/{total}" if total is not None else ""))
    name = event.sse_name
    if name == "metric":
        value = data.get("value")
        shown = f"{value:.4g}" if isinstance(value, float) else value
        parts.append(f"{data.get('name') or event.type}={shown}")
        if data.get("split"):
            parts.append(f"split={data['split']}")
    elif name == "status":
        parts.append(f"state={data.get('state')}")
        if event.message:
            parts.append(event.message)
    elif name == "artifact":
        parts.append(f"artifact={data.get('kind')} {data.get('url')}")
    else:
        parts.append(f"[{event.level}] {event.message or json.dumps(data)}")
    return " ".join(parts)


def _step(watcher: JobsWatcher) -> str:
    if watcher.step is None:
        return f"step - of {watcher.total}" if watcher.total is not None else "step -"
    return f"step {watcher.step}" + (f" of {watcher.total}" if watcher.total is not None else "")


def _label(watcher: JobsWatcher) -> str:
    return f"{watcher.kind} job" if watcher.kind else "job"


def _metric_name(watcher: JobsWatcher, name: str) -> str:
    """A metric whose events name another kind than the job's says so: `reward (eval)`."""
    kind = watcher.metric_kinds.get(name)
    return f"{name} ({kind})" if kind and kind != watcher.kind else name


def live_view(watcher: JobsWatcher) -> Group:
    header = Text.assemble(
        (_label(watcher) + " ", "bold"),
        watcher.job_id,
        "  state ",
        (str(watcher.state or "?"), "bold cyan"),
        f"  {_step(watcher)}",
        f"  events {watcher.events}",
    )
    metrics = Table(
        title=f"{watcher.kind} metrics" if watcher.kind else "metrics",
        title_justify="left",
        box=None,
        show_header=True,
        header_style="bold",
    )
    size = next(iter(watcher.metrics.values())).size if watcher.metrics else 0
    # one "mean" everywhere: of every value, as the summary at the end shows it
    for column in ("metric", "last", "mean", "n", f"min (last {size})", f"max (last {size})"):
        metrics.add_column(column, justify="right" if column != "metric" else "left")
    for name, window in sorted(watcher.metrics.items()):
        s = {**window.summary(), "mean": window.overall_mean}
        metrics.add_row(
            _metric_name(watcher, name),
            *(f"{s[k]:.4g}" if s[k] is not None else "-" for k in ("last", "mean")),
            str(window.count),
            *(f"{s[k]:.4g}" if s[k] is not None else "-" for k in ("min", "max")),
        )
    logs = Text("\n".join(watcher.logs) or "(no logs yet)", style="dim")
    return Group(header, metrics, logs)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


def print_summary(console: Console, watcher: JobsWatcher) -> None:
    """The end of a watch: final state, duration, step, events, each metric, artifacts."""
    summary = watcher.summary()
    line = "; ".join(
        part
        for part in (
            f"{_label(watcher)} {watcher.job_id} {summary['state'] or 'unknown'} "
            f"in {_duration(summary['duration_s'])}",
            _step(watcher) if watcher.step is not None or watcher.total is not None else "",
            f"{summary['events']} events (last id {summary['last_seq']})",
        )
        if part
    )
    console.print(Text(line, style="bold"), soft_wrap=True)
    if summary["metrics"]:
        table = Table(
            title=f"{watcher.kind} metrics" if watcher.kind else "metrics",
            title_justify="left",
            box=None,
            header_style="bold",
        )
        for column in ("metric", "last", "mean", "n"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for name, metric in summary["metrics"].items():
            table.add_row(
                _metric_name(watcher, name),
                *(f"{metric[k]:.4g}" if metric[k] is not None else "-" for k in ("last", "mean")),
                str(metric["count"]),
            )
        console.print(table)
    for artifact in summary["artifacts"]:
        kind = artifact.get("kind") or "artifact"
        console.print(Text(f"artifact {kind}: {artifact.get('url') or '-'}"), soft_wrap=True)
