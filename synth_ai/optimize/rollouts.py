"""One candidate on one seed: a `/rollout` whose policy calls go through the interceptor.

Each rollout gets its own correlation id; the interceptor maps it to the candidate, so the app
needs nothing but the `inference_url` it is given. A rollout the app failed, refused or
answered with an infrastructure error is scored 0 and never sent again: sending it again
would spend the budget on the same failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from synth_ai.client import TaskAppClient, TaskAppClientError

from .config import PromptLearningSection
from .interceptor import Interceptor
from .records import Exchange
from .spend import TokenMeter

Candidate = dict[str, str]
MAX_FEEDBACK_CHARS = 2000


def candidate_id(candidate: Mapping[str, str]) -> str:
    """A short stable id from the candidate's text: equal texts, equal ids."""
    text = json.dumps(dict(candidate), sort_keys=True, ensure_ascii=False)
    return "c" + hashlib.sha256(text.encode()).hexdigest()[:10]


def ident_part(text: str) -> str:
    """`text` with only the characters a job id has (letters, digits, `_`)."""
    return re.sub(r"[^A-Za-z0-9_]", "", text)[:64]


@dataclass
class RolloutRecord:
    seed: int
    candidate_id: str
    cid: str
    score: float = 0.0
    status: str = "ok"
    """`ok`, `error` (the task failed or was refused) or `infra_error`."""
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)

    def failure(self) -> str | None:
        """What went wrong, with the interceptor's own words when it refused a call."""
        refused = [e.error for e in self.exchanges if e.error]
        if refused:
            return refused[0]
        return self.error if self.status != "ok" else None


class Rollouts:
    """Rolls candidates out on seeds through the task app, `max_concurrent` at a time."""

    def __init__(
        self,
        config: PromptLearningSection,
        client: TaskAppClient,
        interceptor: Interceptor,
        meter: TokenMeter,
        *,
        to_sections: Callable[[Candidate], list[dict[str, str]]],
        max_concurrent: int,
        tag: str = "pl",
        job_id: str | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.interceptor = interceptor
        self.meter = meter
        self.to_sections = to_sections
        self.limit = asyncio.Semaphore(max_concurrent)
        self.tag = tag
        self.scope = f"{ident_part(job_id)}-" if job_id else ""
        """The job's id in every cid (and so in every trace's session id), for the viewer's job
        filter: `pl-<candidate>-<job>-<random>`."""

    def request(
        self, seed: int, cid: str, candidate: Candidate, inference_url: str
    ) -> dict[str, Any]:
        policy = self.config.policy
        env_config: dict[str, Any] = {**self.config.env_config, "seed": seed}
        policy_config: dict[str, Any] = {
            "model": policy.model,
            "provider": policy.provider,
            "inference_url": inference_url,
            "temperature": policy.temperature,
            "max_completion_tokens": policy.max_completion_tokens,
        }
        if self.config.delivery == "prompt_template":
            policy_config["prompt_template"] = self.to_sections(candidate)
        return {
            "run_id": candidate_id(candidate),
            "trace_correlation_id": cid,
            "env": {"seed": seed, "config": env_config},
            "policy": {
                "policy_name": policy.policy_name or policy.model,
                "config": policy_config,
            },
            "mode": "eval",
            "record": {"return_trace": False},
        }

    async def one(self, candidate: Candidate, seed: int) -> RolloutRecord:
        ident = candidate_id(candidate)
        cid = f"{self.tag}-{ident}-{self.scope}{secrets.token_urlsafe(12)}"
        record = RolloutRecord(seed=seed, candidate_id=ident, cid=cid)
        async with self.limit:
            rewrite = self.config.delivery == "interceptor"
            url = self.interceptor.register(cid, candidate, rewrite=rewrite)
            try:
                response = await self.client.rollout(self.request(seed, cid, candidate, url))
            except TaskAppClientError as exc:
                record.status, record.error = "error", f"{exc.code}: {exc.message}"[:500]
            else:
                metrics = response.metrics
                score = metrics.outcome_score
                if score is None:
                    score = metrics.mean_return
                record.score = float(score) if score is not None else 0.0
                if not math.isfinite(record.score):
                    record.score = 0.0
                record.details = dict(metrics.details)
                infra = record.details.get("infra_error")
                if infra:
                    record.status = "infra_error"
                    record.score = 0.0
                    record.error = str(infra.get("message") if isinstance(infra, dict) else infra)
            finally:
                record.exchanges = self.interceptor.release(cid)
                for exchange in record.exchanges:
                    usage = exchange.usage
                    self.meter.add(
                        "policy",
                        self.config.policy.model,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                    )
        return record

    async def batch(self, candidate: Candidate, seeds: Sequence[int]) -> list[RolloutRecord]:
        return list(await asyncio.gather(*(self.one(candidate, seed) for seed in seeds)))


def feedback(record: RolloutRecord) -> str:
    """What reflection reads about one rollout: the score, what failed, the app's details."""
    parts = [f"score {record.score:g}"]
    failure = record.failure()
    if failure:
        parts.append(f"failed: {failure}")
    details = {k: v for k, v in record.details.items() if k not in ("usage", "infra_error")}
    if details:
        parts.append("details: " + json.dumps(details, default=str, sort_keys=True))
    return "; ".join(parts)[:MAX_FEEDBACK_CHARS]
