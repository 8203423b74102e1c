"""gepa's `GEPAAdapter` over a task app: a batch of seeds is a batch of concurrent `/rollout`s.

gepa calls `evaluate` synchronously from the optimizer's thread; the rollouts run on the job's
event loop (`run_coroutine_threadsafe`) and the thread waits, so the loop is never blocked.

The budget counts real `/rollout` calls, and the adapter enforces it: gepa alone overshoots
`max_metric_calls` (by a minibatch, and by a validation pass on acceptance), so a batch that
does not fit in what is left is refused whole and the run stops with the best so far. The same
refusal stops a run at its next batch when it is canceled or a token limit is passed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gepa.core.adapter import EvaluationBatch, GEPAAdapter
from gepa.core.state import GEPAState

from .rollouts import Candidate, RolloutRecord, Rollouts, candidate_id, feedback

MAX_CALLS_SHOWN = 8
"""Policy calls of one rollout shown to reflection (a long multi-turn rollout is cut here)."""
BatchHook = Callable[[Candidate, list[RolloutRecord]], None]


class Stop(Exception):
    """No more rollouts: the budget is spent, the run was canceled, or a limit was passed."""


class Budget:
    """Real `/rollout` calls: what the search may make and has made. Thread-safe."""

    def __init__(self, limit: int, spent: int = 0) -> None:
        self.limit = limit
        self.spent = spent
        self.reason: str | None = None
        self._lock = threading.Lock()

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def stop(self, reason: str) -> None:
        with self._lock:
            self.reason = self.reason or reason

    def take(self, count: int) -> None:
        """Reserve `count` rollouts, or raise `Stop` (and stop for good) when they do not fit."""
        with self._lock:
            if self.reason is None and self.spent + count > self.limit:
                self.reason = f"rollout budget spent ({self.spent} of {self.limit})"
            if self.reason is not None:
                raise Stop(self.reason)
            self.spent += count


class RolloutAdapter(GEPAAdapter[int, RolloutRecord, dict[str, Any]]):
    """`evaluate` and `make_reflective_dataset` for gepa; proposals come from gepa's own
    reflective proposer (its `reflection_lm`)."""

    propose_new_texts = None

    def __init__(
        self,
        rollouts: Rollouts,
        budget: Budget,
        loop: asyncio.AbstractEventLoop,
        *,
        limit_reached: Callable[[], str | None] = lambda: None,
        on_batch: BatchHook | None = None,
        on_spend: Callable[[], None] | None = None,
        preset: Mapping[tuple[str, int], RolloutRecord] | None = None,
    ) -> None:
        self.rollouts = rollouts
        self.budget = budget
        self.loop = loop
        self.limit_reached = limit_reached
        self.on_batch = on_batch
        self.on_spend = on_spend
        """Called once rollouts are reserved, before any is sent: the run stores what it has
        spent then, so a kill during a batch cannot hand the batch's rollouts back."""
        self.preset = dict(preset or {})
        """Results already paid for (a resumed run's seed scores), used once instead of a
        rollout."""

    def should_stop(self, gepa_state: GEPAState[Any, Any] | None = None) -> bool:
        """gepa's stop condition, checked before each iteration."""
        reason = self.limit_reached()
        if reason:
            self.budget.stop(reason)
        return self.budget.stopped

    def evaluate(
        self, batch: list[int], candidate: dict[str, str], capture_traces: bool = False
    ) -> EvaluationBatch[RolloutRecord, dict[str, Any]]:
        records = self.run_batch(candidate, batch)
        return EvaluationBatch(
            outputs=[{"seed": r.seed, "score": r.score, "status": r.status} for r in records],
            scores=[r.score for r in records],
            trajectories=records if capture_traces else None,
        )

    def run_batch(self, candidate: Candidate, seeds: Sequence[int]) -> list[RolloutRecord]:
        ident = candidate_id(candidate)
        known = {
            seed: self.preset.pop((ident, seed)) for seed in seeds if (ident, seed) in self.preset
        }
        todo = [seed for seed in seeds if seed not in known]
        if self.should_stop():
            raise Stop(self.budget.reason)
        self.budget.take(len(todo))
        if self.on_spend is not None:
            self.on_spend()
        future = asyncio.run_coroutine_threadsafe(
            self.rollouts.batch(dict(candidate), todo), self.loop
        )
        fresh = dict(zip(todo, future.result(), strict=True))
        records = [known[seed] if seed in known else fresh[seed] for seed in seeds]
        if self.on_batch is not None:
            self.on_batch(dict(candidate), records)
        return records

    def make_reflective_dataset(
        self,
        candidate: dict[str, str],
        eval_batch: EvaluationBatch[RolloutRecord, dict[str, Any]],
        components_to_update: list[str],
    ) -> dict[str, list[dict[str, Any]]]:
        """Per component, per rollout: its inputs (the wildcard values the app filled in), what
        the model answered on each call (text and tool calls), and the reward with the app's
        `metrics.details` as feedback. The same rows serve every component: the feedback is
        about the whole prompt."""
        rows = [reflective_row(record) for record in eval_batch.trajectories or []]
        return {component: rows for component in components_to_update}


def reflective_row(record: RolloutRecord) -> dict[str, Any]:
    exchanges = record.exchanges[:MAX_CALLS_SHOWN]
    inputs: dict[str, Any] = {"seed": record.seed}
    if exchanges and exchanges[0].wildcards:
        inputs.update(exchanges[0].wildcards)
    elif exchanges and exchanges[0].messages:  # delivered as a prompt template: no wildcards
        inputs["messages"] = exchanges[0].messages
    outputs = [{"text": e.output, "tool_calls": e.tool_calls} for e in exchanges]
    return {
        "Inputs": inputs,
        "Generated Outputs": outputs[0] if len(outputs) == 1 else outputs,
        "Feedback": feedback(record),
        "score": record.score,
    }
