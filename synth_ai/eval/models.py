"""An evaluation job's configuration, its per-seed results and its summary."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synth_ai.task.outcome import SeedResult

MAX_MESSAGES = 20
MAX_MESSAGE = 300


class EvalConfig(BaseModel):
    """What to evaluate: a task app, a policy, seeds, and how hard to push."""

    model_config = ConfigDict(extra="forbid")

    task_app_url: str = Field(max_length=2048, pattern=r"^https?://")
    api_key: str | None = Field(default=None, repr=False, max_length=4096)
    """The task app's key. Never filled in from the server's own environment."""
    seeds: list[int] = Field(min_length=1, max_length=100_000)
    split: str | None = Field(default=None, max_length=256)
    model: str | None = Field(default=None, max_length=256)
    inference_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    policy_config: dict[str, Any] = Field(default_factory=dict)
    prompt_template: dict[str, Any] | list[dict[str, Any]] | None = None
    concurrency: int = Field(default=8, ge=1, le=1024)
    timeout_s: float = Field(default=120.0, gt=0, le=86_400, allow_inf_nan=False)
    max_retries: int = Field(default=3, ge=0, le=20)
    include_infra_errors_in_mean: bool = False
    exclude_errors_from_mean: bool = False
    """Seeds the app failed (task errors) count as reward 0 in the mean unless this is set."""
    fail_under: float | None = Field(default=None, allow_inf_nan=False)
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    """The verdict's thresholds (`verdict.py`); a run that fails one ends `failed`."""
    success_threshold: float = Field(default=0.0, allow_inf_nan=False)
    """A seed succeeds when its `details.success` (or `details.correct`) is true, or, when the
    app reports neither as a boolean, when its reward is above this."""


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class EvalSummary(BaseModel):
    total: int
    completed: int
    mean_reward: float | None
    success_rate: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    errors_by_kind: dict[str, int]
    infra_errors: int
    task_errors: int = 0
    """Seeds whose rollout the app refused or failed (its executor raised): never retried."""
    task_errors_in_mean: bool = True
    """Whether the mean counts the task errors, as reward 0 (`exclude_errors` unset)."""
    error_messages: dict[str, int] = Field(default_factory=dict)
    """Each distinct error once, with how many seeds met it (the first few kinds)."""
    canceled: bool = False
    policy_calls: int | None = None
    unanswered: int | None = None
    """The stand-in policy's calls and how many it could not answer; None when the policy is
    not a stand-in."""

    @property
    def failed(self) -> int:
        """Seeds without a scored result: errors of either kind, and seeds never run."""
        return self.total - (self.completed - self.infra_errors - self.task_errors)

    @classmethod
    def of(
        cls,
        results: list[SeedResult],
        total: int,
        *,
        include_infra: bool = False,
        exclude_errors: bool = False,
        canceled: bool = False,
    ) -> EvalSummary:
        """The mean takes every scored seed, a task error as 0 (unless `exclude_errors`), and
        a scored infrastructure error only with `include_infra`: it was not the task's doing."""
        scored = [
            r
            for r in results
            if (r.reward is not None and r.status == "ok")
            or (r.reward is not None and include_infra and r.status == "infra_error")
            or (not exclude_errors and r.status == "error")
        ]
        ok = [r for r in results if r.status == "ok"]
        latencies = sorted(r.latency_s for r in results)
        return cls(
            total=total,
            completed=len(results),
            mean_reward=statistics.fmean(r.reward or 0.0 for r in scored) if scored else None,
            success_rate=sum(r.success for r in ok) / len(ok) if ok else None,
            p50_latency_s=_percentile(latencies, 50),
            p95_latency_s=_percentile(latencies, 95),
            errors_by_kind=dict(Counter(r.error_kind for r in results if r.error_kind)),
            infra_errors=sum(r.status == "infra_error" for r in results),
            task_errors=sum(r.status == "error" for r in results),
            task_errors_in_mean=not exclude_errors,
            error_messages=dict(
                Counter(
                    f"{r.error_kind}: {r.error}"[:MAX_MESSAGE] for r in results if r.error
                ).most_common(MAX_MESSAGES)
            ),
            canceled=canceled,
        )
