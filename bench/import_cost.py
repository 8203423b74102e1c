"""What `import synth_ai.task` costs, and what a base install weighs, against the published
`synth-ai==0.2.24` (installed by `framework_overhead.py` into bench/.cache/published)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench.framework_overhead import PUBLISHED, PUBLISHED_VENV, ensure_published
from bench.harness import record

ROOT = Path(__file__).resolve().parents[1]
FRESH_VENV = Path(__file__).with_name(".cache") / "base-install"
PROBE = (
    "import resource, time; t = time.perf_counter(); import synth_ai.task; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)
RUNS = 7


def import_cost(python: Path) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MB) of `import synth_ai.task` in a fresh process."""
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [str(python), "-c", PROBE], capture_output=True, text=True, check=True, cwd="/"
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


def fresh_base_install() -> Path:
    shutil.rmtree(FRESH_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(FRESH_VENV)], check=True)
    subprocess.run(
        [str(FRESH_VENV / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)], check=True
    )
    return FRESH_VENV


def main() -> None:
    venv = fresh_base_install()
    ours_time, ours_rss = import_cost(venv / "bin" / "python")
    ours_count, ours_size = footprint(venv)
    published = ensure_published()
    rows = [
        f"| synth-ai (this) | {ours_time * 1000:.0f} | {ours_rss:.0f} | {ours_count} | "
        f"{ours_size:.0f} |"
    ]
    ratio = ""
    if published is not None:
        pub_time, pub_rss = import_cost(published)
        pub_count, pub_size = footprint(PUBLISHED_VENV)
        rows.append(
            f"| {PUBLISHED} | {pub_time * 1000:.0f} | {pub_rss:.0f} | {pub_count} | "
            f"{pub_size:.0f} |"
        )
        ratio = (
            f"\nImport time {pub_time / ours_time:.1f}x lower, peak RSS "
            f"{pub_rss / ours_rss:.1f}x lower, {pub_count - ours_count} fewer distributions."
        )
    table = "\n".join(rows)
    record(
        "import and install cost",
        f"""
`import synth_ai.task` in a fresh process (median of {RUNS}), and a fresh virtualenv with the
base install (no extras).

| package | import ms | peak RSS MB | distributions | site-packages MB |
|---|---|---|---|---|
{table}
{ratio}
""",
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
