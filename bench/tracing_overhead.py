"""Rollouts/s on the math app with the offline policy, tracing on (SQLite) versus off.

Goal (DESIGN.md 8): tracing on keeps at least 0.8x the throughput of tracing off.

The modes alternate round by round, so drift in a shared machine hits both alike; each round's
on/off ratio is also shown, since adjacent runs see the most alike machine. The task app's CPU
per rollout (all its threads, the trace writer's included) is the steadiest measure of what
tracing costs: it moves little when other work on the machine slows everything down.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import LoadResult, cpu_seconds, load, record, server_process

KEY = "bench-key"
CONCURRENCY = 16
ROUNDS = 5


def math_app() -> object:
    from synth_ai.examples.math_task_app import build_config
    from synth_ai.task import create_task_app

    return create_task_app(build_config())


def policy_app() -> object:
    from synth_ai.offline_policy import create_offline_policy_app

    return create_offline_policy_app()


@dataclass
class Round:
    load: LoadResult
    cpu_ms: float
    """The task app's CPU per rollout answered (warm-up included), every thread."""


@contextmanager
def app_server(env: dict[str, str]) -> Iterator[tuple[str, Callable[[], float | None]]]:
    """The math app in a forked process, with a reader of that process's CPU seconds."""
    pid = multiprocessing.Value("i", 0)  # shared memory: the child writes its pid here

    def make() -> object:
        pid.value = os.getpid()
        return math_app()

    with server_process(make, env) as url:
        deadline = time.monotonic() + 30
        while not pid.value and time.monotonic() < deadline:
            time.sleep(0.01)  # the child starts in the background; its pid comes once forked
        yield url, lambda: cpu_seconds(pid.value)


def main() -> None:
    trace_dir = Path(tempfile.mkdtemp(prefix="bench-traces-"))
    with server_process(policy_app) as policy_url:

        def body(n: int) -> dict:
            return {
                "trace_correlation_id": f"bench-{n}",
                "env": {"seed": n % 1000},
                "policy": {"config": {"model": "offline-policy", "inference_url": policy_url}},
            }

        runs: dict[str, list[Round]] = {"off": [], "on": []}
        for _ in range(ROUNDS):  # alternate, so drift in the machine hits both alike
            for mode in runs:
                env = {
                    "ENVIRONMENT_API_KEY": KEY,
                    "TASKAPP_TRACING_ENABLED": "1" if mode == "on" else "0",
                    "TASKAPP_TRACE_DB": str(trace_dir / "synth_ai.db"),
                }
                with app_server(env) as (url, app_cpu):
                    before = app_cpu()
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
                    after = app_cpu()
                assert result.errors == 0, f"{result.errors} failed rollouts (tracing {mode})"
                answered = sum(result.statuses.values())
                cpu_ms = (
                    (after - before) * 1000 / answered
                    if before is not None and after is not None
                    else float("nan")
                )
                runs[mode].append(Round(result, cpu_ms))
    results = {
        mode: sorted(rounds, key=lambda r: r.load.rps)[ROUNDS // 2] for mode, rounds in runs.items()
    }
    ratio = results["on"].load.rps / results["off"].load.rps
    paired = [on.load.rps / off.load.rps for off, on in zip(runs["off"], runs["on"], strict=True)]
    cpu = {mode: statistics.median(r.cpu_ms for r in rounds) for mode, rounds in runs.items()}
    rows = "\n".join(
        f"| {mode} | {r.load.rps:.0f} | {r.load.percentile(50):.1f} | "
        f"{r.load.percentile(99):.1f} | {cpu[mode]:.2f} |"
        for mode, r in results.items()
    )
    verdict = "meets" if ratio >= 0.8 else "misses"
    record(
        "tracing overhead",
        f"""
Math task app + offline policy, each in its own process, {CONCURRENCY} concurrent clients;
{ROUNDS} alternating rounds per mode, the median round shown. App CPU: the task app process's
CPU (all threads, the trace writer's included) per rollout, median over the rounds.

| tracing | rollouts/s | p50 ms | p99 ms | app CPU ms/rollout |
|---|---|---|---|---|
{rows}

Each round's on/off ratio: {", ".join(f"{p:.2f}" for p in paired)}
(median {statistics.median(paired):.2f}x). App CPU on/off: {cpu["on"] / cpu["off"]:.2f}x.

**Tracing on / off: {ratio:.2f}x** (goal >= 0.8x: {verdict}).
""",
    )
    print(
        f"tracing on/off throughput ratio: {ratio:.2f}x "
        f"(rounds: {', '.join(f'{p:.2f}' for p in paired)}); "
        f"app CPU {cpu['off']:.2f} -> {cpu['on']:.2f} ms/rollout"
    )


if __name__ == "__main__":
    main()
