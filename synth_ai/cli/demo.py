"""`synth-ai demo`: the math task app against the offline policy, end to end, no keys needed."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import uuid

import click
from rich.console import Console
from rich.table import Table

from synth_ai.offline_policy import OFFLINE_MODEL, create_offline_policy_app
from synth_ai.task import (
    RolloutResponse,
    TaskAppClient,
    TaskAppClientError,
    create_task_app,
    get_task_app,
    serve_in_background,
)


async def _run_rollouts(
    app_url: str, policy_url: str, api_key: str, seeds: list[int], concurrency: int
) -> dict[int, RolloutResponse | TaskAppClientError]:
    gate = asyncio.Semaphore(concurrency)
    async with TaskAppClient(app_url, api_key) as client:
        await client.health()

        async def one(seed: int) -> RolloutResponse | TaskAppClientError:
            request = {
                "trace_correlation_id": f"demo-{seed}-{uuid.uuid4().hex[:8]}",
                "env": {"seed": seed, "config": {"split": "train"}},
                "policy": {"config": {"model": OFFLINE_MODEL, "inference_url": policy_url}},
                "mode": "eval",
            }
            async with gate:
                try:
                    return await client.rollout(request)
                except TaskAppClientError as exc:
                    return exc

        results = await asyncio.gather(*(one(seed) for seed in seeds))
    return dict(zip(seeds, results, strict=True))


@click.command()
@click.option("--seeds", "count", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--error-rate",
    default=0.15,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="How often the offline policy answers wrongly (seeded, deterministic).",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256))
def demo(count: int, error_rate: float, concurrency: int) -> None:
    """Serve the math app and the offline policy on loopback and run rollouts through them."""
    console = Console()
    logging.getLogger("synth_ai.task.access").setLevel(logging.WARNING)
    api_key = os.environ.get("ENVIRONMENT_API_KEY") or secrets.token_urlsafe(24)
    os.environ["ENVIRONMENT_API_KEY"] = api_key  # this process only: the served app reads it
    entry = get_task_app("math")
    seeds = list(range(count))
    policy_app = create_offline_policy_app(error_rate=error_rate)
    with (
        serve_in_background(policy_app) as policy_url,
        serve_in_background(create_task_app(entry.config_factory())) as app_url,
    ):
        console.print(f"offline policy (stand-in for an LLM) at {policy_url}")
        console.print(f"math task app at {app_url}")
        results = asyncio.run(_run_rollouts(app_url, policy_url, api_key, seeds, concurrency))
    table = Table(title=f"{count} rollouts of the math task app")
    for column in ("seed", "reward", "reason", "answer", "expected"):
        table.add_column(column, justify="right" if column in ("seed", "reward") else "left")
    rewards: list[float] = []
    failures = 0
    for seed, result in results.items():
        if isinstance(result, TaskAppClientError):
            failures += 1
            table.add_row(str(seed), "-", f"[red]{result.code}[/red]", "", "")
            continue
        details = result.metrics.details
        reward = result.metrics.outcome_score or 0.0
        rewards.append(reward)
        table.add_row(
            str(seed),
            f"{reward:+.1f}",
            str(details.get("reason", "")),
            str(details.get("submitted_answer", "")),
            str(details.get("expected_answer", "")),
        )
    console.print(table)
    mean = sum(rewards) / len(rewards) if rewards else 0.0
    console.print(f"mean reward: [bold]{mean:.3f}[/bold] over {len(rewards)} rollouts")
    if failures:
        console.print(f"[red]{failures} rollouts failed[/red]")
        raise SystemExit(1)
