"""Rollouts/s through the prompt optimizer's interceptor versus straight to the policy.

Goal (issue 27): through the interceptor at least 0.9x the rollouts/s of `eval` sending the same
app straight to the policy, at the same concurrency, and the proxy's added p50 latency recorded.

The math app and the offline policy each run in their own process. The interceptor runs where
`synth-ai optimize` runs it: entered with `async with` on the event loop that sends the rollouts
(here `run_eval`'s, on `asyncio.run` as both commands use), forwarding with its aiohttp client.
The two modes alternate round by round on that one loop, so drift on a shared machine hits
both alike. `python -m bench.optimize_interceptor [ROUNDS]` runs more rounds on a busy machine.

Rollouts/s swing with whatever else the machine runs, so the CPU every process spends per
rollout (app, policy, and this one: the sender and the interceptor) is shown too: it moves
little under load, and on a machine the three saturate, throughput follows its inverse.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import sys
import time

from bench.harness import cpu_seconds, eval_rate, record, server_process
from bench.tracing_overhead import KEY, math_app, policy_app
from synth_ai.examples.math_task_app.app import DEFAULT_PROMPT
from synth_ai.optimize.interceptor import Interceptor
from synth_ai.optimize.prompt import REQUIRED, InitialPrompt, PromptMessage

CONCURRENCY = 16
SEEDS = 300
ROUNDS = 3
GOAL = 0.9
INITIAL = InitialPrompt(
    [
        PromptMessage("system", DEFAULT_PROMPT["system"], order=0),
        PromptMessage("user", DEFAULT_PROMPT["user"].replace("{problem}", "{query}"), order=1),
    ],
    {"query": REQUIRED},
)


def children() -> set[int]:
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


def cpu_now(pids: set[int]) -> float:
    """CPU seconds so far of this process (every thread) and of the server processes `pids`."""
    return time.process_time() + sum(cpu_seconds(pid) or 0.0 for pid in pids)


Round = tuple[float, float, float]
"""Rollouts/s, p50 ms, CPU ms per rollout (every process)."""


async def one_round(app_url: str, inference_url: str, servers: set[int]) -> Round:
    cpu = cpu_now(servers)
    rate, summary = await eval_rate(app_url, inference_url, KEY, SEEDS, CONCURRENCY)
    cpu_ms = (cpu_now(servers) - cpu) * 1000 / SEEDS
    return rate, (summary.p50_latency_s or 0.0) * 1000, cpu_ms


async def alternate(policy_url: str, app_url: str, rounds: int) -> tuple[list[Round], list[Round]]:
    """Direct and proxied rounds in turn, on this loop, with the interceptor served on it."""
    servers = children()
    direct: list[Round] = []
    proxied: list[Round] = []
    interceptor = Interceptor(INITIAL, policy_url, max_records_per_cid=SEEDS * (rounds + 1))
    async with interceptor:
        # one cid for the whole run: the app stamps it on every rollout's inference URL
        through = interceptor.register("bench", INITIAL.seed_candidate())
        for url in (policy_url, through):  # warm-up: connections, imports
            await one_round(app_url, url, servers)
        for _ in range(rounds):
            direct.append(await one_round(app_url, policy_url, servers))
            proxied.append(await one_round(app_url, through, servers))
        exchanges = interceptor.release("bench")
    assert len(exchanges) == SEEDS * (rounds + 1) and not any(e.error for e in exchanges)
    return direct, proxied


def main(rounds: int = ROUNDS) -> None:
    load = os.getloadavg()[0]
    with (
        server_process(policy_app) as policy_url,
        server_process(math_app, {"ENVIRONMENT_API_KEY": KEY}) as app_url,
    ):
        direct, proxied = asyncio.run(alternate(policy_url, app_url, rounds))
    rate_direct, p50_direct, cpu_direct = (
        statistics.median(r[i] for r in direct) for i in range(3)
    )
    rate_proxied, p50_proxied, cpu_proxied = (
        statistics.median(r[i] for r in proxied) for i in range(3)
    )
    # the ratio of adjacent rounds: they see the most alike machine
    ratio = statistics.median(p[0] / d[0] for d, p in zip(direct, proxied, strict=True))
    rows = "\n".join(
        f"| {n + 1} | {d[0]:.0f} | {p[0]:.0f} | {p[0] / d[0]:.2f}x | {d[1]:.1f} | {p[1]:.1f} | "
        f"{d[2]:.2f} | {p[2]:.2f} |"
        for n, (d, p) in enumerate(zip(direct, proxied, strict=True))
    )
    verdict = "met" if ratio >= GOAL else "missed"
    record(
        "optimize interceptor",
        f"""
`run_eval` on the math app with the offline policy, {SEEDS} seeds at concurrency {CONCURRENCY},
{rounds} alternating rounds: straight to the policy, and through the interceptor (served on
the rollout sender's event loop, as in `synth-ai optimize`: cid lookup, prompt match, render,
forward with aiohttp, record). App and policy each in their own process.

| round | rollouts/s direct | proxied | ratio | p50 ms direct | proxied | CPU ms direct | proxied |
|---|---|---|---|---|---|---|---|
{rows}

- Rollouts/s: the median round's ratio is **{ratio:.2f}x** (goal >= {GOAL}x: {verdict}); medians
  {rate_direct:.0f}/s direct, {rate_proxied:.0f}/s proxied. Load average {load:.1f} on the
  machine's {os.cpu_count()} cores when the run started: the spread of the rounds is that work.
- Latency: the proxy's added p50 is **{p50_proxied - p50_direct:+.1f} ms**
  ({p50_direct:.1f} -> {p50_proxied:.1f} ms).
- CPU per rollout, all three processes: {cpu_direct:.2f} ms direct, {cpu_proxied:.2f} ms
  proxied: where CPU is the limit, as with this policy that answers at once, the interceptor
  keeps **{cpu_direct / cpu_proxied:.2f}x** the direct rate. The extra HTTP hop (a server and
  a client pass) is that cost; matching and rendering do not show in a profile.
- All {SEEDS * (rounds + 1)} proxied calls (warm-up included) recorded, none refused.
""",
    )
    print(
        f"through the interceptor: {ratio:.2f}x rollouts/s, {p50_proxied - p50_direct:+.1f} ms "
        f"p50, {cpu_direct / cpu_proxied:.2f}x by CPU per rollout"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
