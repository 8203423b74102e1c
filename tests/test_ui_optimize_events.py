"""What the optimization page reads from the events beyond the published fields: each
candidate's parent, the components it changed, the rollouts spent when it was scored, why a
proposal was not kept, and the validation seeds its scores are for. gepa's callbacks are
driven by hand here, in the order gepa calls them."""

from __future__ import annotations

from typing import Any

from synth_ai.jobs import Emitter
from synth_ai.optimize.events import Recorder
from synth_ai.optimize.rollouts import candidate_id

SEED = {"system": "Solve it.", "user": "Problem: {problem}"}
CHILD = {**SEED, "system": "Solve it. Submit exact fractions."}


class Captured(Emitter):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.events.append((type, data or {}))

    def of(self, type: str) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == type]


def iteration(
    recorder: Recorder, n: int, parent: dict[str, str], child: dict[str, str] | None
) -> None:
    recorder.on_candidate_selected({"candidate": parent, "iteration": n})
    recorder.on_evaluation_end({"candidate_idx": 0, "scores": [0.0, 1.0]})
    if child is not None:
        recorder.on_proposal_end({"new_instructions": {"system": child["system"]}})
        recorder.on_evaluation_end({"candidate_idx": None, "scores": [1.0, 1.0]})


def test_events_carry_parent_changes_spend_and_reasons() -> None:
    emitter = Captured()
    spent = iter(range(10, 1000, 10))
    recorder = Recorder(
        emitter,
        lambda c: [{"role": k, "content": v} for k, v in c.items()],
        spent=lambda: next(spent),
        validation_seeds=[10, 11],
    )
    seed_id, child_id = candidate_id(SEED), candidate_id(CHILD)
    scores = {0: 0.0, 1: 1.0}  # gepa names the validation instances by their index
    recorder.on_valset_evaluated(
        {"candidate": SEED, "scores_by_val_id": scores, "average_score": 0.5, "iteration": 0}
    )
    iteration(recorder, 1, SEED, CHILD)  # accepted: validated next
    recorder.on_valset_evaluated(
        {
            "candidate": CHILD,
            "scores_by_val_id": {"10": 1.0, "11": 1.0},
            "average_score": 1.0,
            "iteration": 1,
        }
    )
    iteration(recorder, 2, CHILD, CHILD)  # reflection proposed the same text
    recorder.on_candidate_rejected({"old_score": 1.0, "new_score": 1.0})
    iteration(recorder, 3, CHILD, {**CHILD, "system": "Stop."})  # the run stops here
    recorder.on_iteration_end({"iteration": 3})

    seed_scored, child_scored = emitter.of("prompt.learning.validation.scored")
    assert seed_scored["parent_id"] is None and seed_scored["is_baseline"]
    assert child_scored["parent_id"] == seed_id and not child_scored["is_baseline"]
    assert seed_scored["rollouts_spent"] < child_scored["rollouts_spent"]
    assert seed_scored["seeds"] == child_scored["seeds"] == [10, 11]  # seeds, not indices
    assert seed_scored["instance_scores"] == [0.0, 1.0]

    accepted, same, stopped = emitter.of("prompt.learning.proposal.scored")
    assert accepted["accepted"] and accepted["candidate_id"] == child_id
    assert accepted["parent_id"] == seed_id and accepted["components_changed"] == ["system"]
    assert accepted["reason"] is None
    assert not same["accepted"] and same["components_changed"] == []
    assert same["reason"] == "reflection proposed no change"
    assert not stopped["accepted"] and stopped["components_changed"] == ["system"]
    assert stopped["reason"] == "the run stopped before it was validated"
    spends = [e["rollouts_spent"] for e in (accepted, same, stopped)]
    assert spends == sorted(spends) and len(set(spends)) == 3

    # the same in candidates.json, beside the published fields
    entries = {(c["id"], c["accepted"]): c for c in recorder.candidates}
    assert entries[(child_id, True)]["components_changed"] == ["system"]
    assert entries[(seed_id, True)]["components_changed"] == []
    assert all(isinstance(c["rollouts_spent"], int) for c in recorder.candidates)


def test_a_resumed_run_starts_with_the_candidates_it_carried_over() -> None:
    first = Recorder(None, lambda c: [{"role": "system", "content": c["system"]}])
    first.on_valset_evaluated(
        {
            "candidate": SEED,
            "scores_by_val_id": {0: 0.0, 1: 1.0},
            "average_score": 0.5,
            "iteration": 0,
        }
    )
    iteration(first, 1, SEED, CHILD)
    first.on_candidate_rejected({"old_score": 1.0, "new_score": 1.0})
    resumed = Recorder(None, lambda c: [], first.candidates, validation_seeds=[10, 11])
    seed, child = resumed.restored()
    assert seed["candidate_id"] == candidate_id(SEED) and seed["is_baseline"]
    assert seed["seeds"] == [10, 11] and seed["instance_scores"] == [0.0, 1.0]
    assert seed["sections"] == [{"role": "system", "content": "Solve it."}]
    assert child["parent_id"] == candidate_id(SEED) and not child["accepted"]
    assert child["sections"] is None  # only the best's prompt: the rest are in candidates.json
    assert (child["minibatch_score_before"], child["minibatch_score"]) == (1.0, 1.0)
