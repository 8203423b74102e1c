"""Eval throughput: rollouts/s of `synth-ai eval` at concurrency 1, 16 and 64.

The math task app and the offline policy each run in their own process; the eval job runs in
this one, as `synth-ai eval` does.
"""

from __future__ import annotations

import asyncio
import time

from bench.harness import record, server_process
from bench.tracing_overhead import KEY, math_app, policy_app
from synth_ai.eval import EvalConfig, run_eval

SEEDS = {1: 150, 16: 600, 64: 600}


def main() -> None:
    rows = []
    rates: dict[int, float] = {}
    with (
        server_process(policy_app) as policy_url,
        server_process(math_app, {"ENVIRONMENT_API_KEY": KEY}) as app_url,
    ):
        for concurrency, count in SEEDS.items():
            config = EvalConfig(
                task_app_url=app_url,
                api_key=KEY,
                seeds=list(range(count)),
                model="offline-policy",
                inference_url=policy_url,
                concurrency=concurrency,
            )
            started = time.perf_counter()
            _, summary = asyncio.run(run_eval(config))
            elapsed = time.perf_counter() - started
            assert summary.completed == count and summary.mean_reward == 1.0
            rates[concurrency] = count / elapsed
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
