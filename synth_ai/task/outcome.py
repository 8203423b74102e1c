"""What one rollout came to: success, a task failure or an infrastructure error.

The framework's classification of an answer to `/rollout`, so `synth-ai check` and `eval`
judge an answer the same way: infrastructure errors (nothing answered, the app was overloaded,
a gateway failed, or the app reported `infra_error`) are not the task's fault and may be
retried; an executor that raised is the task's error.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from .answers import RETRYABLE, TaskAppClientError
from .contracts import RolloutResponse

ResultStatus = Literal["ok", "infra_error", "error"]
INFRA_CODES = {"transport_error", "overloaded", "rollout_timeout", "missing_environment_api_key"}
NO_POLICY = "no policy to roll out with: pass --inference-url or --offline-policy"
"""What `eval` and `check` both say when an app calls a policy and none was given."""
MAX_DETAILS_BYTES = 4096


class SeedResult(BaseModel):
    """One rollout's result: a seed of an eval, or the rollout `check` sends."""

    seed: int
    reward: float | None = None
    status: ResultStatus = "ok"
    success: bool = False
    latency_s: float = 0.0
    trace_correlation_id: str
    error: str | None = None
    error_kind: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def bounded_details(details: dict[str, Any], limit: int = MAX_DETAILS_BYTES) -> dict[str, Any]:
    """Every key the app reported, with values cut to a string once the whole passes `limit`
    bytes of JSON, so one huge detail never bloats the results."""
    kept: dict[str, Any] = {}
    used = 2
    for key, value in details.items():
        text = json.dumps(value, default=str)
        if used + len(key) + len(text) + 4 > limit:
            value = text[: max(0, limit // 8)] + "..."
        kept[key] = value
        used += len(key) + len(json.dumps(value, default=str)) + 4
    return kept


def succeeded(details: dict[str, Any], reward: float | None, threshold: float) -> bool:
    """`details.success`, else `details.correct`, when the app reports a boolean; else the
    reward above `threshold`."""
    for key in ("success", "correct"):
        if isinstance(details.get(key), bool):
            return bool(details[key])
    return reward is not None and reward > threshold


def result_from_error(seed: int, cid: str, latency: float, exc: TaskAppClientError) -> SeedResult:
    """Infrastructure (not the task's fault) only when nothing answered, the app was overloaded
    or a gateway failed; an executor that raised (`rollout_failed`) is the task's error."""
    infra = exc.status is None or exc.status in RETRYABLE or exc.code in INFRA_CODES
    return SeedResult(
        seed=seed,
        status="infra_error" if infra else "error",
        latency_s=latency,
        trace_correlation_id=cid,
        error=exc.message[:500],
        error_kind=exc.code,
    )


def result_from_answer(
    seed: int, cid: str, latency: float, response: RolloutResponse, success_threshold: float = 0.0
) -> SeedResult:
    """An answer's result: success by the app's own report (`succeeded`), or an infrastructure
    error when it carries `details.infra_error` (the rollout never truly ran)."""
    metrics = response.metrics
    reward = metrics.outcome_score if metrics.outcome_score is not None else metrics.mean_return
    infra = metrics.details.get("infra_error")
    return SeedResult(
        seed=seed,
        reward=reward,
        status="infra_error" if infra else "ok",
        success=succeeded(metrics.details, reward, success_threshold),
        latency_s=latency,
        trace_correlation_id=response.trace_correlation_id or cid,
        error=str(infra.get("message")) if isinstance(infra, dict) else None,
        error_kind=str(infra.get("kind")) if isinstance(infra, dict) else None,
        details=bounded_details(metrics.details),
    )
