"""Checks that a rollout response keeps the correlation-id rule that RL trainers depend on."""

from __future__ import annotations

from typing import Any

from .contracts import RolloutResponse
from .correlation import url_correlation_id


def validate_rollout_response_for_rl(
    response: RolloutResponse | dict[str, Any], *, warn_only: bool = False
) -> list[str]:
    """List every break of the cid rule, each naming the exact path that breaks it.

    Raises `ValueError` with all of them unless `warn_only`; answers the (possibly empty) list.
    """
    data = response.model_dump(mode="json") if isinstance(response, RolloutResponse) else response
    problems: list[str] = []
    cid = data.get("trace_correlation_id")
    if not cid:
        problems.append("trace_correlation_id: missing at the top level")
    meta = data.get("pipeline_metadata")
    if not isinstance(meta, dict):
        problems.append("pipeline_metadata: missing or not an object")
        meta = {}
    if meta.get("trace_correlation_id") != cid:
        problems.append(
            "pipeline_metadata.trace_correlation_id: "
            f"{meta.get('trace_correlation_id')!r} does not match {cid!r}"
        )
    url = meta.get("inference_url")
    if not isinstance(url, str) or not url:
        problems.append("pipeline_metadata.inference_url: missing")
    elif url_correlation_id(url) != cid:
        problems.append(
            f"pipeline_metadata.inference_url: cid is {url_correlation_id(url)!r}, expected {cid!r}"
        )
    trajectories = data.get("trajectories") or []
    if not trajectories:
        problems.append("trajectories: empty")
    for t, trajectory in enumerate(trajectories):
        for s, step in enumerate(trajectory.get("steps") or []):
            step_meta = (step.get("info") or {}).get("meta") or {}
            path = f"trajectories[{t}].steps[{s}].info.meta.inference_url"
            if step_meta.get("inference_url") != url:
                problems.append(
                    f"{path}: {step_meta.get('inference_url')!r} does not mirror {url!r}"
                )
    if problems and not warn_only:
        raise ValueError("rollout response breaks the RL contract: " + "; ".join(problems))
    return problems
