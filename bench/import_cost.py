"""What `import synth_ai.task` costs, and what a base install weighs, against the published
`synth-ai==0.2.24` (installed by `framework_overhead.py` into bench/.cache/published)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.framework_overhead import PUBLISHED, PUBLISHED_VENV, ensure_published
from bench.harness import fresh_install, record

PROBE = (
    "import resource, time; t = time.perf_counter(); {statement}; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)
RUNS = 11
PACKAGE = "import synth_ai.task"
SERVING = {
    "this": "from synth_ai.task import TaskAppConfig, create_task_app",
    PUBLISHED: "from synth_ai.task.server import TaskAppConfig, create_task_app",
}
"""What an app needs to be served: `synth_ai.task` loads its names on first use, so the
package import alone says little; this is the import every served app pays."""
GOAL = 0.20
HELP_GOAL_MS = 300
COLUMNS = (
    "package",
    "package import ms",
    "serving imports ms",
    "`synth-ai --help` ms",
    "peak RSS MB",
    "distributions",
    "site MB",
)
HEADER = f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}"


def help_s(python: Path, home: str) -> float:
    """Wall seconds of one `synth-ai --help`, from exec to exit, run where a user would (outside
    any checkout, with a HOME of its own: 0.2.24's CLI writes a queue database there)."""
    started = time.perf_counter()
    subprocess.run(
        [str(python.parent / "synth-ai"), "--help"],
        capture_output=True,
        check=True,
        cwd=home,
        env={**os.environ, "HOME": home},
    )
    return time.perf_counter() - started


def import_s(python: Path, statement: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `statement` in one fresh process."""
    out = subprocess.run(
        [str(python), "-c", PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024


@dataclass
class Samples:
    package: list[float] = field(default_factory=list)
    serving: list[float] = field(default_factory=list)
    help: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    def take(self, python: Path, serving: str, home: str) -> None:
        seconds, rss = import_s(python, PACKAGE)
        self.package.append(seconds)
        self.rss.append(rss)
        self.serving.append(import_s(python, serving)[0])
        self.help.append(help_s(python, home))

    def row(self, name: str, venv: Path) -> str:
        count, size = footprint(venv)
        ms = [statistics.median(values) * 1000 for values in (self.package, self.serving)]
        return (
            f"| {name} | {ms[0]:.0f} | {ms[1]:.0f} | {statistics.median(self.help) * 1000:.0f} | "
            f"{statistics.median(self.rss):.0f} | {count} | {size:.0f} |"
        )


def footprint(venv: Path) -> tuple[int, float]:
    """Distributions installed (pip and setuptools aside) and site-packages size in MB."""
    python = venv / "bin" / "python"
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    count = sum(1 for line in listed if not line.lower().startswith(("pip==", "setuptools==")))
    site = next(venv.glob("lib/python*/site-packages"))
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6
    return count, size


def main() -> None:
    python = fresh_install()
    published = ensure_published()
    ours, theirs = Samples(), Samples()
    with tempfile.TemporaryDirectory() as home:
        for _ in range(RUNS):  # alternating, so a machine that slows down weighs on both alike
            ours.take(python, SERVING["this"], home)
            if published is not None:
                theirs.take(published, SERVING[PUBLISHED], home)
    rows = [ours.row("synth-ai (this)", python.parents[1])]
    ours_help = statistics.median(ours.help) * 1000
    ratio = ""
    if published is not None:
        rows.append(theirs.row(PUBLISHED, PUBLISHED_VENV))
        rounds = [mine / other for mine, other in zip(ours.serving, theirs.serving, strict=True)]
        serving = statistics.median(rounds)
        package = statistics.median(ours.package) / statistics.median(theirs.package)
        rss = statistics.median(theirs.rss) / statistics.median(ours.rss)
        ratio = (
            f"\n`import synth_ai.task`: {package:.2f}x of {PUBLISHED}'s. The serving imports, "
            f"each round's ratio: {', '.join(f'{r:.2f}' for r in rounds)}; median "
            f"**{serving:.2f}x** (goal at most {GOAL:.2f}x: "
            f"{'met' if serving <= GOAL else 'missed'}). Peak RSS {rss:.1f}x lower."
        )
    table = "\n".join(rows)
    record(
        "import and install cost",
        f"""
In a fresh process (median of {RUNS} rounds, this package and {PUBLISHED} alternating):
`import synth_ai.task` (its names load on first use), the imports serving an app needs
(`{SERVING["this"]}`; for {PUBLISHED} `{SERVING[PUBLISHED]}`), and `synth-ai --help` from exec
to exit, in a fresh virtualenv with the base install (no extras).

{HEADER}
{table}
{ratio}
**`synth-ai --help`: {ours_help:.0f} ms** (goal under {HELP_GOAL_MS} ms: \
{"met" if ours_help < HELP_GOAL_MS else "missed"}).
""",
    )
    print("\n".join(rows))
    print(ratio)


if __name__ == "__main__":
    main()
