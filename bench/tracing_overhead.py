"""Rollouts/s on the math app with the offline policy, tracing on (SQLite) versus off.

Goal (DESIGN.md 8): tracing on keeps at least 0.8x the throughput of tracing off.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.harness import LoadResult, load, median_run, record, server_process

KEY = "bench-key"
CONCURRENCY = 16
ROUNDS = 3


def math_app() -> object:
    from math_task_app import build_config

    from synth_ai.task import create_task_app

    return create_task_app(build_config())


def policy_app() -> object:
    from synth_ai.offline_policy import create_offline_policy_app

    return create_offline_policy_app()


def main() -> None:
    trace_dir = Path(tempfile.mkdtemp(prefix="bench-traces-"))
    with server_process(policy_app) as policy_url:

        def body(n: int) -> dict:
            return {
                "trace_correlation_id": f"bench-{n}",
                "env": {"seed": n % 1000},
                "policy": {"config": {"model": "offline-policy", "inference_url": policy_url}},
            }

        runs: dict[str, list[LoadResult]] = {"off": [], "on": []}
        for _ in range(ROUNDS):  # alternate, so drift in the machine hits both alike
            for mode in runs:
                env = {
                    "ENVIRONMENT_API_KEY": KEY,
                    "TASKAPP_TRACING_ENABLED": "1" if mode == "on" else "0",
                    "TASKAPP_TRACE_DB": str(trace_dir / "synth_ai.db"),
                }
                with server_process(math_app, env) as url:
                    result = load(
                        url,
                        "/rollout",
                        method="POST",
                        body=body,
                        headers={"X-API-Key": KEY},
                        concurrency=CONCURRENCY,
                        warmup_s=1.0,
                        duration_s=4.0,
                    )
                assert result.errors == 0, f"{result.errors} failed rollouts (tracing {mode})"
                runs[mode].append(result)
        results = {mode: median_run(rounds) for mode, rounds in runs.items()}
    ratio = results["on"].rps / results["off"].rps
    rows = "\n".join(
        f"| {mode} | {r.rps:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} |"
        for mode, r in results.items()
    )
    verdict = "meets" if ratio >= 0.8 else "misses"
    record(
        "tracing overhead",
        f"""
Math task app + offline policy, each in its own process, {CONCURRENCY} concurrent clients;
{ROUNDS} alternating rounds per mode, the median round shown.

| tracing | rollouts/s | p50 ms | p99 ms |
|---|---|---|---|
{rows}

**Tracing on / off: {ratio:.2f}x** (goal >= 0.8x: {verdict}).
""",
    )
    print(f"tracing on/off throughput ratio: {ratio:.2f}x")


if __name__ == "__main__":
    main()
