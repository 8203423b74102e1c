"""Eval throughput: rollouts/s of `synth-ai eval` at concurrency 1, 16 and 64.

The math task app and the offline policy each run in their own process; the eval job runs in
this one, as `synth-ai eval` does.
"""

from __future__ import annotations

import asyncio

from bench.harness import eval_rate, record, server_process
from bench.tracing_overhead import KEY, math_app, policy_app

SEEDS = {1: 150, 16: 600, 64: 600}


def main() -> None:
    rows = []
    rates: dict[int, float] = {}
    with (
        server_process(policy_app) as policy_url,
        server_process(math_app, {"ENVIRONMENT_API_KEY": KEY}) as app_url,
    ):
        for concurrency, count in SEEDS.items():
            rate, summary = asyncio.run(eval_rate(app_url, policy_url, KEY, count, concurrency))
            rates[concurrency] = rate
            rows.append(
                f"| {concurrency} | {count} | {rates[concurrency]:.0f} | "
                f"{summary.p50_latency_s * 1000:.1f} | {summary.p95_latency_s * 1000:.1f} |"
            )
    table = "\n".join(rows)
    record(
        "eval throughput",
        f"""
`run_eval` against the math app with the offline policy (each in its own process).

| concurrency | seeds | rollouts/s | p50 ms | p95 ms |
|---|---|---|---|---|
{table}

Speed-up over concurrency 1: **{rates[16] / rates[1]:.1f}x** at 16, **{rates[64] / rates[1]:.1f}x**
at 64 (two cores run the app, the policy and the eval client).
""",
    )
    print(", ".join(f"c={c}: {r:.0f}/s" for c, r in rates.items()))


if __name__ == "__main__":
    main()
