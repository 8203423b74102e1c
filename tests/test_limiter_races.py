"""The rollout limiter under cancellation at every point (issue 26 item 17): a waiter cancelled
just as a running rollout releases must neither raise nor lose or duplicate a slot."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.task.limits import RolloutLimiter


async def _settle() -> None:
    """Let every ready task take its step (a fixed number of loop turns, not a sleep)."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize("release_first", [False, True])
@pytest.mark.parametrize("waiters", [1, 2, 3])
def test_a_waiter_cancelled_as_a_slot_is_released(release_first: bool, waiters: int) -> None:
    async def scenario() -> None:
        limiter = RolloutLimiter(1, 3)
        assert limiter.try_acquire()
        tasks = [asyncio.create_task(limiter.acquire()) for _ in range(waiters)]
        await _settle()
        assert limiter.waiting == waiters
        # the race: in one turn of the loop, the first waiter's client leaves and the running
        # rollout ends, before the waiter's task runs again
        if release_first:
            limiter.release()
            tasks[0].cancel()
        else:
            tasks[0].cancel()
            limiter.release()
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        await _settle()
        admitted = [t for t in tasks[1:] if t.done()]
        for task in admitted:
            assert task.exception() is None
        # one slot: the cancelled waiter's, handed on to the next waiter or freed
        assert limiter.running == 1 if waiters > 1 else limiter.running == 0
        assert len(admitted) == (1 if waiters > 1 else 0)
        for task in tasks[1:]:
            if task.done():
                limiter.release()
            else:
                task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        assert (limiter.running, limiter.waiting) == (0, 0)

    for _ in range(20):
        asyncio.run(scenario())


operations = st.lists(
    st.one_of(
        st.just(("acquire", 0)),
        st.tuples(st.just("cancel"), st.integers(0, 7)),
        st.tuples(st.just("release"), st.integers(0, 7)),
        st.just(("turn", 0)),
    ),
    max_size=40,
)


@settings(max_examples=1000, deadline=None)
@given(ops=operations)
def test_any_interleaving_keeps_the_count_true(ops: list[tuple[str, int]]) -> None:
    """Acquires, cancels, releases and loop turns in any order: no acquire raises anything but
    429 or its own cancellation, `running` is the number of holders, and it never passes the
    bound."""

    async def scenario() -> None:
        limiter = RolloutLimiter(2, 3)
        tasks: list[asyncio.Task[None]] = []
        released: set[int] = set()

        def holders() -> list[int]:
            return [
                i
                for i, t in enumerate(tasks)
                if t.done() and not t.cancelled() and t.exception() is None and i not in released
            ]

        for op, index in ops:
            if op == "acquire":
                tasks.append(asyncio.create_task(limiter.acquire()))
            elif op == "cancel" and tasks:
                tasks[index % len(tasks)].cancel()
            elif op == "release" and holders():
                holder = holders()[index % len(holders())]
                released.add(holder)
                limiter.release()
            else:
                await asyncio.sleep(0)
            assert limiter.running <= 2
        await _settle()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                assert getattr(task.exception(), "status", None) == 429, task.exception()
        assert limiter.running == len(holders())
        for i in holders():
            released.add(i)
            limiter.release()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _settle()
        for i in holders():  # handed a slot as it was cancelled: its release was its own
            released.add(i)
            limiter.release()
        assert (limiter.running, limiter.waiting) == (0, 0)

    asyncio.run(scenario())
