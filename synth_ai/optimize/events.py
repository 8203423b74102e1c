"""What an optimization reports: gepa's callbacks as the published `prompt.learning.*` events,
and the record of every candidate (`candidates.json`: parent, scores, accepted or not).

The callbacks run in the optimizer's thread; `Emitter.emit` may be called from any thread.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from synth_ai.jobs import Emitter

from .rollouts import Candidate, candidate_id

Sections = list[dict[str, str]]
ToSections = Callable[[Candidate], Sections]


def changed(parent: Candidate | None, child: Candidate) -> list[str]:
    """The components whose text the child changed (none for the seed prompt)."""
    if parent is None:
        return []
    return sorted(name for name, text in child.items() if parent.get(name) != text)


class Recorder:
    """A gepa callback: turns the search's steps into events and candidate records. gepa
    calls only the hooks an object has, so only those this needs are here."""

    def __init__(
        self,
        emitter: Emitter | None,
        to_sections: ToSections,
        candidates: list[dict[str, Any]] | None = None,
        spent: Callable[[], int] | None = None,
        validation_seeds: Sequence[int] = (),
    ) -> None:
        self.emitter = emitter
        self.to_sections = to_sections
        self.spent = spent or (lambda: 0)
        """The `/rollout` calls spent so far: where each candidate sits on the page's x axis."""
        self.validation_seeds = list(validation_seeds)
        """gepa names validation instances by their index in the pool; events name the seed."""
        self.candidates: list[dict[str, Any]] = list(candidates or [])
        self._lock = threading.Lock()
        self._parent: Candidate | None = None
        self._child: Candidate | None = None
        self._iteration = 0
        self._minibatch: dict[str, float | None] = {"before": None, "after": None}

    def emit(self, type: str, message: str | None = None, **data: Any) -> None:
        if self.emitter is not None:
            self.emitter.emit(type, message=message, data=data)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [c for c in self.candidates if c["accepted"]]

    @property
    def best(self) -> dict[str, Any] | None:
        """The accepted candidate with the best validation score (the earliest on a tie)."""
        scored = [c for c in self.accepted if c.get("validation_score") is not None]
        return max(scored, key=lambda c: c["validation_score"], default=None)

    def _add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.candidates.append(entry)

    def on_candidate_selected(self, event: Any) -> None:
        self._parent = dict(event["candidate"])
        self._child = None
        self._iteration = int(event["iteration"])
        self._minibatch = {"before": None, "after": None}

    def on_evaluation_end(self, event: Any) -> None:
        key = "before" if event["candidate_idx"] is not None else "after"
        self._minibatch[key] = float(sum(event["scores"]))

    def on_proposal_end(self, event: Any) -> None:
        if self._parent is not None:
            self._child = {**self._parent, **dict(event["new_instructions"])}

    def on_candidate_rejected(self, event: Any) -> None:
        if self._child is None or self._parent is None:
            return
        before, after = float(event["old_score"]), float(event["new_score"])
        reason = "reflection proposed no change" if self._child == self._parent else None
        self._reject_child(before, after, reason)

    def _reject_child(self, before: float | None, after: float | None, reason: str | None) -> None:
        """Record the proposal under way as rejected (its minibatch scores, and why)."""
        assert self._child is not None
        self._add(
            self._entry(
                self._child,
                accepted=False,
                minibatch=(before, after),
                parent=self._parent,
                reason=reason,
            )
        )
        self._proposal(self._child, accepted=False, before=before, after=after, reason=reason)
        self._child = None

    def on_valset_evaluated(self, event: Any) -> None:
        candidate = dict(event["candidate"])
        ident = candidate_id(candidate)
        scores = {str(seed): float(score) for seed, score in event["scores_by_val_id"].items()}
        average = float(event["average_score"])
        baseline = int(event["iteration"]) == 0
        previous = self.best
        if not any(c["id"] == ident and c["accepted"] for c in self.candidates):
            before, after = self._minibatch["before"], self._minibatch["after"]
            entry = self._entry(
                candidate,
                accepted=True,
                minibatch=None if baseline else (before, after),
                parent=None if baseline else self._parent,
            )
            entry.update(validation=scores, validation_score=average, baseline=baseline)
            self._add(entry)
            if not baseline:
                self._proposal(candidate, accepted=True, before=before, after=after)
            self._child = None
        if baseline:
            self.iteration_metrics(0)
        self.emit(
            "prompt.learning.validation.scored",
            f"{'seed prompt' if baseline else ident}: validation {average:.3f}",
            candidate_id=ident,
            accuracy=average,
            instance_scores=list(scores.values()),
            seeds=[self.seed_of(int(index)) for index in scores],
            is_baseline=baseline,
            parent_id=None if baseline else candidate_id(self._parent) if self._parent else None,
            rollouts_spent=self.spent(),
        )
        if previous is None or average > previous["validation_score"]:
            self.emit(
                "prompt.learning.gepa.new_best",
                f"new best {average:.3f} ({ident})",
                candidate_id=ident,
                best_score=average,
                previous_best=None if previous is None else previous["validation_score"],
                is_baseline=baseline,
                rollouts_spent=self.spent(),
            )

    def restored(self) -> list[dict[str, Any]]:
        """The candidates a resumed run starts from, as the page needs them (their own events
        went to the stopped job); only the best one's prompt (the page's diff), to keep it
        small."""
        best = self.best
        return [
            {
                "candidate_id": c["id"],
                "parent_id": c["parent"],
                "accepted": c["accepted"],
                "is_baseline": bool(c.get("baseline")),
                "validation_score": c.get("validation_score"),
                "seeds": [self.seed_of(int(index)) for index in c.get("validation", {})],
                "instance_scores": list(c.get("validation", {}).values()),
                "minibatch_score_before": (c.get("minibatch") or {}).get("before"),
                "minibatch_score": (c.get("minibatch") or {}).get("after"),
                "components_changed": c.get("components_changed", []),
                "rollouts_spent": c.get("rollouts_spent"),
                "reason": c.get("reason"),
                "sections": c["sections"] if c is best else None,
            }
            for c in self.candidates
        ]

    def seed_of(self, index: int) -> int:
        pool = self.validation_seeds
        return pool[index] if 0 <= index < len(pool) else index

    def on_iteration_end(self, event: Any) -> None:
        if self._child is not None:  # stopped between its minibatch and its validation
            reason = "the run stopped before it was validated"
            self._reject_child(self._minibatch["before"], self._minibatch["after"], reason)
        self.iteration_metrics(int(event["iteration"]))

    def iteration_metrics(self, step: int) -> None:
        scores = [c["validation_score"] for c in self.accepted if "validation_score" in c]
        if self.emitter is None or not scores:
            return
        for name, value in (
            ("best_validation_score", max(scores)),
            ("mean_validation_score", statistics.fmean(scores)),
        ):
            self.emitter.emit_metric(
                name, value, step=step, split="eval", type="prompt.learning.metric"
            )

    def final_events(self, summary: dict[str, Any]) -> None:
        """The artifacts, the best prompt, every candidate and the end, in the published
        order."""
        for name, url in summary.get("artifacts", {}).items():
            kind = name.split(".")[0]
            self.emit(f"artifact.{kind}", kind=kind, url=url)
        best_score, test = summary["best_score"], summary["best_score"]["test"]
        self.emit(
            "prompt.learning.best.prompt",
            f"best prompt {summary['best_candidate_id']}",
            best_prompt=summary["best_prompt"],
            best_score=best_score["validation"],
            test_score=test,
            candidate_id=summary["best_candidate_id"],
        )
        self.emit(
            "prompt.learning.final.results",
            "final results",
            optimized_candidates=[
                {
                    "id": c["id"],
                    "validation_score": c.get("validation_score"),
                    "sections": c["sections"],
                }
                for c in self.accepted
            ],
            attempted_candidates=[
                {"id": c["id"], "accepted": c["accepted"], "parent": c["parent"]}
                for c in self.candidates
            ],
            seed_score=summary["seed_score"],
            best_score=best_score,
        )
        self.emit(
            "prompt.learning.gepa.complete",
            f"GEPA finished ({summary['stop_reason'] or 'search ended'})",
            rollouts=summary["rollouts"],
            tokens=summary["tokens"],
            stop_reason=summary["stop_reason"],
        )

    def _entry(
        self,
        candidate: Candidate,
        *,
        accepted: bool,
        minibatch: tuple[float | None, float | None] | None,
        parent: Candidate | None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": candidate_id(candidate),
            "parent": candidate_id(parent) if parent else None,
            "iteration": self._iteration,
            "accepted": accepted,
            "candidate": candidate,
            "sections": self.to_sections(candidate),
            "created_at": time.time(),
            "components_changed": changed(parent, candidate),
            "rollouts_spent": self.spent(),
        }
        if minibatch is not None:
            entry["minibatch"] = {"before": minibatch[0], "after": minibatch[1]}
        if reason:
            entry["reason"] = reason
        return entry

    def _proposal(
        self,
        candidate: Candidate,
        *,
        accepted: bool,
        before: float | None,
        after: float | None,
        reason: str | None = None,
    ) -> None:
        self.emit(
            "prompt.learning.proposal.scored",
            f"proposal {candidate_id(candidate)}: minibatch {before} -> {after}"
            f" ({'accepted' if accepted else 'rejected'})",
            candidate_id=candidate_id(candidate),
            parent_id=candidate_id(self._parent) if self._parent else None,
            iteration=self._iteration,
            minibatch_score_before=before,
            minibatch_score=after,
            accepted=accepted,
            sections=self.to_sections(candidate),
            components_changed=changed(self._parent, candidate),
            rollouts_spent=self.spent(),
            reason=reason,
        )
