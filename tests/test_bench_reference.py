"""The bench's reference handlers do the work DESIGN.md 8 names: they answer the framework's
bytes, cid rule included, so the speed ratios compare the same work."""

from __future__ import annotations

import pytest

from bench import framework_overhead
from bench.framework_overhead import KEY, check_same_answers, trivial_response


def test_the_reference_handlers_answer_what_the_framework_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT_API_KEY", KEY)
    check_same_answers()


def test_a_reference_skipping_the_cid_rule_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT_API_KEY", KEY)

    def uncorrelated(request: framework_overhead.RolloutRequest) -> object:
        answer = trivial_response(request.run_id, request.env.seed)
        answer.trace_correlation_id = request.trace_correlation_id
        return answer

    monkeypatch.setattr(framework_overhead, "correlated_response", uncorrelated)
    with pytest.raises(RuntimeError, match="validating does not answer"):
        check_same_answers()
