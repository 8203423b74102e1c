"""Trace sessions stored per second by a fleet of four task-app processes: all into one
PostgreSQL database, against a SQLite file per process, with tracing off as the ceiling.

Each process serves a trivial traced app (one timestep: an observation, an LLM call record, an
environment event and an outcome reward; no policy server, so the store is what is measured),
forked as the other benches' servers are, and driven by its own concurrent /rollout clients.
A traced rollout answers after its session commits, so acknowledged rollouts per second are
sessions stored per second; afterwards the run counts what the stores hold against the
acknowledgements, and the write errors each process's /health reports.

PostgreSQL: a fresh database on the server of $SYNTH_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped afterwards.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from textwrap import fill
from typing import Any

import httpx

from bench.durability import filesystem, fresh_database, postgres_server, postgres_settings
from bench.framework_overhead import trivial_response
from bench.harness import LoadResult, load_all, median_run, record, server_process

KEY = "bench-key"
PROCESSES = 4
CONCURRENCIES = (8, 16)  # clients per process: more of them, bigger group commits
ROUNDS = 3
WARMUP_S = 1.0
DURATION_S = 4.0
MODES = {
    "off": "tracing off",
    "sqlite": "SQLite, a file per process",
    "postgresql": "PostgreSQL, one database",
}
CHAT_REQUEST = {
    "model": "bench-model",
    "messages": [
        {"role": "system", "content": "Answer with the submit tool."},
        {"role": "user", "content": "Compute 12 + 86 * 8."},
    ],
    "tools": [{"type": "function", "function": {"name": "submit", "parameters": {}}}],
}
CHAT_COMPLETION = {
    "id": "bench",
    "choices": [
        {
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "submit", "arguments": '{"answer": 700}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40},
}


def traced_app() -> object:
    from synth_ai.task import TaskAppConfig, TaskDescriptor, TaskInfo, create_task_app

    async def rollout(request: Any, context: Any) -> dict[str, Any]:
        trace = context.trace
        if trace is not None:
            now = datetime.now(UTC)
            with trace.timestep("turn-0"):
                trace.record_message({"problem": "Compute 12 + 86 * 8."}, "observation")
                trace.record_chat_completion(
                    CHAT_REQUEST, CHAT_COMPLETION, started_at=now, completed_at=now
                )
                trace.record_environment(1.0, terminated=True, state_after={"solved": True})
            trace.record_outcome_reward(1.0, achievements_count=1)
        return trivial_response(request.run_id, request.env.seed)

    base = TaskInfo(task=TaskDescriptor(id="traced", name="Traced"), environment="traced")
    return create_task_app(
        TaskAppConfig(
            app_id="traced",
            name="Traced",
            description="bench",
            base_task_info=base,
            rollout=rollout,
        )
    )


@dataclass
class Run:
    result: LoadResult  # every process's clients together
    acknowledged: int  # 200s over the whole run, warm-up and drain included
    stored: int  # sessions in the store(s) once the servers stopped
    write_errors: int  # reported by the processes' /health


def body_for(process: int) -> Callable[[int], dict[str, Any]]:
    return lambda n: {
        "run_id": f"p{process}-{n}",
        "trace_correlation_id": f"p{process}-{n}",
        "env": {"seed": n % 1000},
        "policy": {"config": {}},
    }


def together(results: list[LoadResult]) -> LoadResult:
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update(result.statuses)
    return LoadResult(
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        seconds=max(r.seconds for r in results),
        latencies_ms=[ms for r in results for ms in r.latencies_ms],
        statuses=statuses,
    )


def count_sessions(mode: str, location: str | list[Path]) -> int:
    if mode == "postgresql":
        import psycopg

        assert isinstance(location, str)
        with psycopg.connect(location) as conn:
            return conn.execute("SELECT COUNT(*) FROM session_traces").fetchone()[0]
    total = 0
    for path in location:
        with sqlite3.connect(path) as conn:
            total += conn.execute("SELECT COUNT(*) FROM session_traces").fetchone()[0]
    return total


def serve_and_load(envs: list[dict[str, str]], concurrency: int) -> tuple[LoadResult, int]:
    """The fleet, one process per environment, under load; answers the load and the write
    errors the processes report."""
    with ExitStack() as servers:
        urls = [servers.enter_context(server_process(traced_app, env)) for env in envs]
        results = load_all(
            [(url, body_for(n)) for n, url in enumerate(urls)],
            "/rollout",
            method="POST",
            headers={"X-API-Key": KEY},
            concurrency=concurrency,
            warmup_s=WARMUP_S,
            duration_s=DURATION_S,
        )
        errors = sum(
            httpx.get(f"{url}/health", headers={"X-API-Key": KEY}).json()["tracing"]["write_errors"]
            for url in urls
        )
    return together(results), errors


def run_fleet(mode: str, concurrency: int, work: Path) -> Run:
    base = {"ENVIRONMENT_API_KEY": KEY, "TASKAPP_TRACING_ENABLED": "0" if mode == "off" else "1"}
    if mode == "postgresql":
        with fresh_database() as url:
            envs = [{**base, "TASKAPP_TRACE_DB": url}] * PROCESSES
            result, errors = serve_and_load(envs, concurrency)
            stored = count_sessions(mode, url)
    elif mode == "sqlite":
        files = [work / f"{uuid.uuid4().hex[:8]}-{n}.db" for n in range(PROCESSES)]
        envs = [{**base, "TASKAPP_TRACE_DB": str(file)} for file in files]
        result, errors = serve_and_load(envs, concurrency)
        stored = count_sessions(mode, files)
    else:
        (result, errors), stored = serve_and_load([base] * PROCESSES, concurrency), 0
    return Run(result, result.statuses[200], stored, errors)


def row(mode: str, concurrency: int, run: Run) -> str:
    r = run.result
    unstored = "-" if mode == "off" else str(run.acknowledged - run.stored)
    errors = "-" if mode == "off" else str(run.write_errors)
    return (
        f"| {MODES[mode]} | {concurrency} | {r.rps:.0f} | {r.percentile(50):.1f} "
        f"| {r.percentile(99):.1f} | {r.errors} | {unstored} | {errors} |"
    )


def summary(results: dict[tuple[str, int], Run], settings: str | None) -> str:
    lines = []
    for concurrency in CONCURRENCIES:
        lite, off = (results[m, concurrency].result.rps for m in ("sqlite", "off"))
        if settings is None:
            lines.append(f"{concurrency} clients per process: SQLite {lite / off:.2f}x of off.")
            continue
        pg = results["postgresql", concurrency].result.rps
        lines.append(
            f"{concurrency} clients per process: **PostgreSQL / SQLite {pg / lite:.2f}x**; "
            f"of tracing off, PostgreSQL {pg / off:.2f}x and SQLite {lite / off:.2f}x."
        )
    if settings is None:
        lines.append(
            f"PostgreSQL was not measured: no server answered at {postgres_server()} "
            "(set SYNTH_BENCH_POSTGRES_URL)."
        )
    return "\n".join(f"- {line}" for line in lines)


def main() -> None:
    settings = postgres_settings()
    work = Path(tempfile.mkdtemp(prefix="bench-trace-fleet-"))
    modes = [mode for mode in MODES if settings is not None or mode != "postgresql"]
    rounds: dict[tuple[str, int], list[Run]] = {
        (mode, concurrency): [] for concurrency in CONCURRENCIES for mode in modes
    }
    try:
        for _ in range(ROUNDS):  # alternate, so drift in the machine hits every mode alike
            for mode, concurrency in rounds:
                run = run_fleet(mode, concurrency, work)
                rounds[mode, concurrency].append(run)
                print(f"{mode} x{concurrency}: {run.result.rps:.0f} sessions/s", flush=True)
        fs = filesystem(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {key: median_of(runs) for key, runs in rounds.items()}
    rows = [row(mode, concurrency, run) for (mode, concurrency), run in results.items()]
    postgres = (
        f"{settings} on this machine, one fresh database per run"
        if settings is not None
        else "PostgreSQL not measured"
    )
    setup = fill(
        f"{PROCESSES} task-app processes serving a trivial traced app (per session one "
        "timestep: an observation, an LLM call record, an environment event, an outcome "
        "reward), each forked and driven by its own keep-alive clients, all from one load "
        f"generator; {WARMUP_S:g} s warm-up, then {DURATION_S:g} s measured; the median of "
        f"{ROUNDS} alternating rounds shown. A traced rollout answers after its session "
        'commits, so rollouts/s is sessions stored/s; "failed" counts rollouts not answered '
        '200. "Not stored" counts acknowledged '
        'sessions missing from the store(s) once the servers stopped; "write errors", those '
        f"the processes' /health reported. {postgres}; SQLite: WAL, synchronous=NORMAL, a file "
        f"per process on {fs}. The processes, the load generator and PostgreSQL share the "
        "machine's cores.",
        96,
    )
    table = "\n".join(rows)
    record(
        "trace fleet",
        f"""
{setup}

| store | clients/process | sessions/s | p50 ms | p99 ms | failed | not stored | write errors |
|---|---|---|---|---|---|---|---|
{table}

{summary(results, settings)}
""",
    )
    for line in rows:
        print(line)


def median_of(runs: list[Run]) -> Run:
    chosen = median_run([run.result for run in runs])
    return next(run for run in runs if run.result is chosen)


if __name__ == "__main__":
    main()
