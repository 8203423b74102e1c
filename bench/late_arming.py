"""Whether arming a rollout's deadline and disconnect listener late pays its way.

Each app keeps one timer, and a rollout gets its `asyncio.timeout` timer and `ClientWatch`
listener task only if it is still running when that timer fires (synth_ai/task/arming.py).
Issue 26's rule for a fast path: it stays only if it pays at least 3% and a property test holds
it to the plain path (tests/test_late_arming.py). This weighs the trivial app as shipped against
the same app arming both as each rollout starts, on both server setups:

- the server's CPU per request, timed on a real server under the in-repo load (alternating
  rounds; each round's ratio taken moments apart, the median of them judged). This is the
  measure that decides: the listener's wake-ups cost system calls (reading is resumed on the
  socket) that an instruction count leaves out;
- instructions per request under callgrind, where valgrind is installed, for the record.

    python -m bench.late_arming
"""

from __future__ import annotations

import os
import statistics

from bench.framework_overhead import (
    SERVER_ENV,
    THIS,
    Round,
    armed_at_once,
    callgrind_available,
    count_instructions,
    fast_parts,
    in_repo,
    measure,
    ours,
)
from bench.harness import FAST, LOAD_CORE, PURE, ServerSetup, pinning, record

SECTION = "late arming of deadlines and disconnect listeners"
AT_ONCE = "synth-ai, armed as each rollout starts"
THRESHOLD = 0.03
ROUNDS = 9


def main() -> None:
    if pinning():
        os.sched_setaffinity(0, {LOAD_CORE})
    os.environ.update(SERVER_ENV)
    setups = [PURE, FAST] if fast_parts() is not None else [PURE]
    targets = [in_repo(THIS, ours, auth=True), in_repo(AT_ONCE, armed_at_once, auth=True)]
    rounds: dict[tuple[str, ServerSetup], list[Round]] = {
        (t.name, s): [] for t in targets for s in setups
    }
    for _ in range(ROUNDS):
        for setup in setups:
            for target in targets:
                rounds[target.name, setup].append(measure(target, setup, use_wrk=False))
    counts = count_instructions(targets, setups) if callgrind_available() else {}
    rows, verdicts = [], []
    for setup in setups:
        late, at_once = rounds[THIS, setup], rounds[AT_ONCE, setup]
        for one in late + at_once:
            assert one.load.errors == 0, f"{setup.label}: {one.load.errors} errors"
        saved = statistics.median(
            1 - a.load_cpu_us / b.load_cpu_us
            for a, b in zip(late, at_once, strict=True)
            if a.load_cpu_us and b.load_cpu_us
        )
        cpu = [statistics.median(r.load_cpu_us or 0 for r in x) for x in (late, at_once)]
        rps = [statistics.median(r.load.rps for r in x) for x in (late, at_once)]
        count = " | ".join(
            f"{counts[name, setup] / 1000:.0f}k" if (name, setup) in counts else "n/a"
            for name in (THIS, AT_ONCE)
        )
        rows.append(
            f"| {setup.label} | {cpu[0]:.0f} us, {rps[0]:.0f}/s | {cpu[1]:.0f} us, {rps[1]:.0f}/s"
            f" | {saved:.1%} | {count} |"
        )
        verdicts.append(saved >= THRESHOLD)
    keep = "pays its way: kept" if all(verdicts) else "does not pay 3% everywhere: remove it"
    record(
        SECTION,
        f"`POST /rollout` on the trivial app with its key checked, {ROUNDS} alternating rounds "
        "of the in-repo load per setup (as framework_overhead.py runs them): the server's CPU "
        "per request and requests per second (medians), the CPU saved (the median of each "
        "round's ratio), and instructions per request under callgrind.\n\n"
        "| setup | armed late (as shipped) | armed at once | CPU saved by late | "
        "instructions, late | instructions, at once |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"The rule: at least {THRESHOLD:.0%} of CPU saved on every setup. Verdict: {keep}. "
        "tests/test_late_arming.py holds the late arming to the plain path over generated "
        "rollouts (how long each runs, its deadline, when its client leaves, how it ends).",
    )
    print(keep)


if __name__ == "__main__":
    main()
