"""What `import synth_ai.task` costs, and what a base install weighs, against the published
`synth-ai==0.2.24` (installed by `framework_overhead.py` into bench/.cache/published)."""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

from bench.framework_overhead import PUBLISHED, PUBLISHED_VENV, ensure_published
from bench.harness import fresh_install, record

PROBE = (
    "import resource, time; t = time.perf_counter(); {statement}; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)
RUNS = 7
PACKAGE = "import synth_ai.task"
SERVING = {
    "this": "from synth_ai.task import TaskAppConfig, create_task_app",
    PUBLISHED: "from synth_ai.task.server import TaskAppConfig, create_task_app",
}
"""What an app needs to be served: `synth_ai.task` loads its names on first use, so the
package import alone says little; this is the import every served app pays."""
GOAL = 0.20


def import_cost(python: Path, statement: str = PACKAGE) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MB) of `statement` in a fresh process."""
    samples = []
    for _ in range(RUNS):
        probe = PROBE.format(statement=statement)
        out = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=True, cwd="/"
        ).stdout.split()
        samples.append((float(out[0]), int(out[1]) / 1024))
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


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
    ours_time, ours_rss = import_cost(python)
    ours_serving, _ = import_cost(python, SERVING["this"])
    ours_count, ours_size = footprint(python.parents[1])
    published = ensure_published()
    rows = [
        f"| synth-ai (this) | {ours_time * 1000:.0f} | {ours_serving * 1000:.0f} | "
        f"{ours_rss:.0f} | {ours_count} | {ours_size:.0f} |"
    ]
    ratio = ""
    if published is not None:
        pub_time, pub_rss = import_cost(published)
        pub_serving, _ = import_cost(published, SERVING[PUBLISHED])
        pub_count, pub_size = footprint(PUBLISHED_VENV)
        rows.append(
            f"| {PUBLISHED} | {pub_time * 1000:.0f} | {pub_serving * 1000:.0f} | "
            f"{pub_rss:.0f} | {pub_count} | {pub_size:.0f} |"
        )
        serving = ours_serving / pub_serving
        ratio = (
            f"\n`import synth_ai.task`: {ours_time / pub_time:.2f}x of {PUBLISHED}'s; the "
            f"serving imports: **{serving:.2f}x** (goal at most {GOAL:.2f}x: "
            f"{'met' if serving <= GOAL else 'missed'}). Peak RSS {pub_rss / ours_rss:.1f}x "
            f"lower, {pub_count - ours_count} fewer distributions."
        )
    table = "\n".join(rows)
    record(
        "import and install cost",
        f"""
In a fresh process (median of {RUNS}): `import synth_ai.task` (its names load on first use),
and the imports serving an app needs (`{SERVING["this"]}`; for {PUBLISHED}
`{SERVING[PUBLISHED]}`), in a fresh virtualenv with the base install (no extras).

| package | package import ms | serving imports ms | peak RSS MB | distributions | site MB |
|---|---|---|---|---|---|
{table}
{ratio}
""",
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
