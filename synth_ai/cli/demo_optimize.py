"""The demo's second part: a short GEPA optimization of the math app's prompt, run by the jobs
server as a `prompt_learning` job against the offline stand-ins (a prompt-sensitive policy and
a reflection model, labelled as such), followed live here and on the dashboard."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from synth_ai.client import TaskAppClient
from synth_ai.jobs import JobState
from synth_ai.offline_policy import PROMPT_SENSITIVE_MODEL, REFLECTION_MODEL
from synth_ai.optimize.config import parse_config
from synth_ai.optimize.job_kind import KIND, PromptLearningJob

from .optimize_report import LiveView, progress_bar, prompt_diff

SEED_PROMPT = (
    "You are a careful mathematician. Solve the problem, then call the math_submit tool with "
    "only the final answer: an integer, or a fraction in lowest terms."
)
"""What the math app sends as its system prompt: the interceptor matches it, then swaps in
each candidate."""


def demo_job(app_url: str, policy_url: str, api_key: str, budget: int) -> PromptLearningJob:
    """Minibatches from seeds 0-9, the Pareto front on 10-17, the headline on 20-31."""
    section = {
        "algorithm": "gepa",
        "task_app_url": app_url,
        "task_app_api_key": api_key,
        "initial_prompt": {
            "messages": [
                {"role": "system", "pattern": SEED_PROMPT, "order": 0},
                {"role": "user", "pattern": "Problem: {problem}", "order": 1},
            ],
            "wildcards": {"problem": "REQUIRED"},
        },
        "policy": {
            "model": PROMPT_SENSITIVE_MODEL,
            "provider": "openai",
            "inference_url": f"{policy_url}/v1",
        },
        "gepa": {
            "rollout": {"budget": budget, "max_concurrent": 8, "minibatch_size": 4},
            "evaluation": {
                "seeds": list(range(10)),
                "validation_seeds": list(range(10, 18)),
                "test_pool": list(range(20, 32)),
            },
            "mutation": {"llm_model": REFLECTION_MODEL, "llm_inference_url": f"{policy_url}/v1"},
        },
    }
    return PromptLearningJob(
        prompt_learning=parse_config({"prompt_learning": section}).prompt_learning
    )


async def run_optimization(
    job: PromptLearningJob,
    jobs_url: str,
    api_key: str,
    console: Console,
    metadata: dict[str, Any],
) -> tuple[str, dict[str, Any] | None]:
    """Start the job, print its page, follow it to the end; answers (job id, summary)."""
    async with TaskAppClient(jobs_url, api_key) as client:
        created = await client.create_job(KIND, job.model_dump(mode="json"), metadata)
        job_id = str(created["job_id"])
        console.print(f"Watch the optimization: {jobs_url}/ui/job.html?id={job_id}")
        summary = None
        with progress_bar(console) as progress:
            view = LiveView(progress, job.prompt_learning.gepa.rollout.budget)
            async for event in client.stream_job(job_id):
                view(event.type, event.data)
                if event.state is not None and event.state.terminal:
                    if event.state is not JobState.SUCCEEDED:
                        message = event.data.get("message") or event.state.value
                        raise click.ClickException(f"optimization {job_id}: {message}")
                    summary = event.data.get("summary")
        return job_id, summary


def _score(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_optimization(console: Console, job_id: str, summary: dict[str, Any] | None) -> None:
    """What the best prompt changed and what it spent, then the headline: seed vs best."""
    if summary is None:
        raise click.ClickException(f"optimization {job_id} ended without a summary")
    console.print(
        prompt_diff(summary["seed_prompt"]["sections"], summary["best_prompt"]["sections"]),
        markup=False,
        highlight=False,
    )
    rollouts, tokens = summary["rollouts"], summary["tokens"]
    console.print(
        f"rollouts: {rollouts['search']} of budget {rollouts['budget']} in the search, "
        f"{rollouts['test']} on the test pool; tokens: {tokens['total']} (offline, unpriced)"
    )
    table = Table(title=f"optimization {job_id}: seed prompt vs best candidate")
    table.add_column("prompt")
    table.add_column("validation", justify="right")
    table.add_column("test pool (unseen)", justify="right")
    for name, key in (("seed", "seed_score"), ("best", "best_score")):
        scores = summary[key]
        table.add_row(name, _score(scores["validation"]), _score(scores["test"]))
    console.print(table)
