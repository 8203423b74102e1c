"""Whether the edge's direct dispatch of `POST /rollout` still pays its way.

The edge answers the hot route itself, past Starlette's server-error layer and router
(`EdgeMiddleware.direct`). Issue 26's rule for a hand-written fast path: it stays only if it
pays at least 3% and a property test holds it to the plain path (tests/test_edge_direct.py).
This counts the server's instructions per request with it and without it (the same app with
`direct` emptied, so every request goes through the router), under callgrind, on both server
setups, as framework_overhead.py counts them.

    python -m bench.direct_dispatch
"""

from __future__ import annotations

from bench.framework_overhead import (
    THIS,
    callgrind_available,
    count_instructions,
    fast_parts,
    in_repo,
    ours,
    routed,
)
from bench.harness import FAST, PURE, record

SECTION = "direct dispatch of /rollout (instructions per request)"
ROUTED = "synth-ai, every request through the router"
THRESHOLD = 0.03


def main() -> None:
    if not callgrind_available():
        print("valgrind is not installed: direct dispatch is weighed by instruction counts only")
        return
    setups = [PURE, FAST] if fast_parts() is not None else [PURE]
    counts = count_instructions(
        [in_repo(THIS, ours, auth=True), in_repo(ROUTED, routed, True)], setups
    )
    rows, verdicts = [], []
    for setup in setups:
        direct, plain = counts[(THIS, setup)], counts[(ROUTED, setup)]
        saved = 1 - direct / plain
        rows.append(f"| {setup.label} | {direct / 1000:.0f}k | {plain / 1000:.0f}k | {saved:.1%} |")
        verdicts.append(saved >= THRESHOLD)
    keep = "pays its way: kept" if all(verdicts) else "does not pay 3% everywhere: remove it"
    record(
        SECTION,
        "Instructions per `POST /rollout` in the server process (callgrind, 400 requests after "
        "a warm-up), the trivial app with its key checked.\n\n"
        "| setup | direct (as shipped) | through the router | saved by direct |\n"
        "|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"The rule: at least {THRESHOLD:.0%} saved on every setup. Verdict: {keep}. "
        "tests/test_edge_direct.py holds the direct answers to the router's (status, headers, "
        "body) over generated requests: valid, malformed, non-finite, unauthorised, chunked, "
        "and each way an executor ends.",
    )
    print(keep)


if __name__ == "__main__":
    main()
