"""Instructions per /rollout request of this framework from two checkouts (before and after a
change), beside the peers that judge it, counted under callgrind as framework_overhead.py
counts them.

    python -m bench.rollout_counts BEFORE_CHECKOUT

A count does not move with whatever else the machine runs, so a change in the rollout path can
be weighed on a shared machine where timed rounds cannot. The older checkout's code is served by
this venv's python with the checkout first on PYTHONPATH (checked before counting).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.framework_overhead import (
    GOALS,
    OPENENV_NAME,
    PUBLISHED,
    RAW_VALIDATING,
    SERVER_ENV,
    THIS,
    VALIDATING,
    all_targets,
    check_same_answers,
    count_instructions,
    ensure_openenv,
    ensure_published,
    fast_parts,
    in_repo,
    ours,
)
from bench.harness import FAST, PURE, ROOT, ServerSetup, record

SECTION = "rollout path before and after the simplifications (instructions per request)"
BEFORE = "synth-ai (before)"
PEERS = (VALIDATING, RAW_VALIDATING, PUBLISHED, OPENENV_NAME)


def served_from(checkout: Path) -> None:
    """Fail unless a server started for `checkout` imports the framework from it."""
    started = in_repo(BEFORE, ours, checkout=checkout).command(PURE)
    script = "import bench.framework_overhead, synth_ai; print(synth_ai.__file__)"
    env = {"PATH": "/usr/bin:/bin", **started.env}
    origin = subprocess.run(
        [str(started.python), "-c", script], env=env, cwd="/", capture_output=True, text=True
    )
    if not origin.stdout.strip().startswith(str(checkout.resolve())):
        found = origin.stdout + origin.stderr
        raise SystemExit(f"{checkout} is not what its server imports: {found}")


def version(checkout: Path) -> str:
    """The checkout's commit, and whether its synth_ai has changes not committed."""
    git = ["git", "-C", str(checkout)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "synth_ai"], capture_output=True)
    return commit.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def report(counted: dict[tuple[str, ServerSetup], float], setups: list[ServerSetup]) -> str:
    peers = [name for name in PEERS if (name, setups[0]) in counted]
    head = ["setup", "before", "after", "change", *(f"{name} / after" for name in peers)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for setup in setups:
        before, after = counted[BEFORE, setup], counted[THIS, setup]
        cells = [setup.label, f"{before / 1000:.0f}k", f"{after / 1000:.0f}k"]
        cells.append(f"{(after / before - 1) * 100:+.1f}%")
        for name in peers:
            ratio = counted[name, setup] / after
            goal = GOALS.get(name)
            met = "" if goal is None else f" ({'meets' if ratio >= goal else 'misses'} {goal:g}x)"
            cells.append(f"{ratio:.2f}x{met}")
        lines.append("| " + " | ".join(cells) + " |")
    peer_counts = "; ".join(
        f"{name}: " + ", ".join(f"{counted[name, s] / 1000:.0f}k on {s.label}" for s in setups)
        for name in peers
    )
    return "\n".join(lines) + f"\n\nThe peers' own counts: {peer_counts}."


def main(argv: list[str]) -> None:
    before_checkout = Path(argv[0]).resolve()
    served_from(before_checkout)
    served_from(ROOT)
    os.environ.update(SERVER_ENV)
    check_same_answers()
    published, openenv = ensure_published(), ensure_openenv()
    setups = [PURE, FAST] if fast_parts() is not None else [PURE]
    peers = [t for t in all_targets(published, openenv) if t.name in PEERS]
    before = in_repo(BEFORE, ours, auth=True, checkout=before_checkout)
    this = in_repo(THIS, ours, auth=True)
    counted = count_instructions([before, this, *peers], setups)
    table = report(counted, setups)
    print(table)
    record(
        SECTION,
        f"Before: {version(before_checkout)}; after: {version(ROOT)}. Counted by "
        f"`python -m bench.rollout_counts {argv[0]}` as framework_overhead.py counts (callgrind, "
        "the server process, per request after a warm-up). Ratios are the peer's count over "
        "the after count (how many times fewer instructions this framework runs); goals are "
        "those of the timed bench.\n\n" + table,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
