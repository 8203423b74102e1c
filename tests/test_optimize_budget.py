"""The rollout budget under concurrent takers: never overspent, and once a batch is refused
every later one is too (the run stops; it does not squeeze smaller batches in)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.optimize.adapter import Budget, Stop


@pytest.mark.parametrize("round_", range(20))
def test_concurrent_takes_never_overspend(round_: int) -> None:
    budget = Budget(limit=50, spent=3)
    start = threading.Barrier(8)
    granted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def taker(size: int) -> None:
        start.wait()
        while True:
            try:
                budget.take(size)
            except Stop:
                with lock:
                    refused.append(size)
                return
            with lock:
                granted.append(size)

    threads = [threading.Thread(target=taker, args=(1 + (i + round_) % 5,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.spent == 3 + sum(granted) <= 50
    assert len(refused) == 8  # everyone is refused in the end, and told why
    assert budget.reason is not None and budget.reason.startswith("rollout budget spent")


@settings(max_examples=100, deadline=None)
@given(limit=st.integers(1, 200), sizes=st.lists(st.integers(0, 30), max_size=30))
def test_a_refused_batch_stops_the_budget_for_good(limit: int, sizes: list[int]) -> None:
    budget = Budget(limit)
    stopped = False
    for size in sizes:
        try:
            budget.take(size)
        except Stop:
            stopped = True
            continue
        assert not stopped, "a batch was granted after one was refused"
    assert budget.spent <= limit


def test_a_stop_reason_is_kept() -> None:
    budget = Budget(10)
    budget.stop("canceled")
    budget.stop("token limit reached")
    with pytest.raises(Stop, match="canceled"):
        budget.take(1)
    assert budget.spent == 0
