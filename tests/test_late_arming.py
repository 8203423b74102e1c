"""Late arming answers every rollout as arming at once does (the plain path).

A rollout's deadline timer and disconnect listener are armed only once it has run a moment
(synth_ai/task/arming.py; bench/late_arming.py shows what that saves). The rule it must keep:
a deadline expires at the same time, and a client that leaves is noticed at most `after_s`
later than at once, so its rollout either ends as the plain path ends it or, if it finished
within that time, as it would have with the client still there.

The apps run in-process on a loop with a virtual clock: when nothing is ready the clock jumps to
the next timer, so the generated times (executors' runs, deadlines, clients leaving) are exact
and the examples take no wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_ai.task import create_task_app
from synth_ai.task.arming import ARM_AFTER_S, Arming

from .conftest import KEY, echo_rollout, make_config
from .virtual_clock import VirtualClockLoop

EPSILON = 1e-9


@dataclass(frozen=True)
class Rollout:
    start: float
    """When it is sent."""
    run: float
    """How long its executor runs."""
    ending: str
    """How its executor ends: returns, raises, its_own_timeout, or shrugs (a cancellation
    is caught and an answer returned all the same)."""
    deadline: float
    """Its `safety.max_time_s`."""
    leave: float | None
    """When its client leaves, after it was sent."""


@dataclass(frozen=True)
class Outcome:
    status: int
    code: str | None
    ended: float
    told: bool
    """Whether `context.cancelled` was set."""


async def executor(request: Any, context: Any) -> Any:
    plan = request.env.config
    try:
        await asyncio.sleep(plan["run"])
    except asyncio.CancelledError:
        if plan["ending"] != "shrugs":
            raise
    if plan["ending"] == "raises":
        raise ValueError("the executor broke")
    if plan["ending"] == "its_own_timeout":
        raise TimeoutError
    return echo_rollout(request, context)


def run(rollouts: list[Rollout], arming: Arming) -> list[Outcome]:
    """Serve `rollouts` to one app armed by `arming`, in virtual time."""
    app = create_task_app(make_config(executor))
    runner = app.state.task_app.runner
    runner.arming = arming
    contexts: dict[str, Any] = {}
    original = runner.context_for

    def noting(request: Any) -> Any:  # keeps each context, to read `cancelled` at the end
        context = original(request)
        contexts[request.run_id] = context
        return context

    runner.context_for = noting

    async def one(index: int, rollout: Rollout) -> Outcome:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(rollout.start)
        body = {
            "run_id": f"r{index}",
            "env": {"seed": index, "config": {"run": rollout.run, "ending": rollout.ending}},
            "policy": {"policy_name": "p", "config": {}},
            "safety": {"max_time_s": rollout.deadline},
        }
        sent_body = False
        messages: list[MutableMapping[str, Any]] = []
        ended = [0.0]

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": json.dumps(body).encode()}
            leave = rollout.leave
            if leave is None:
                await loop.create_future()  # the client stays
                raise AssertionError("unreachable")
            await asyncio.sleep(rollout.start + leave - loop.time())
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            messages.append(message)
            if message["type"] == "http.response.body":
                ended[0] = loop.time()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/rollout",
            "raw_path": b"/rollout",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"x-api-key", KEY.encode())],
            "client": ("127.0.0.1", 1000 + index),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
        answer = json.loads(messages[-1]["body"])
        error = answer.get("detail", {}).get("error", {}) if isinstance(answer, dict) else {}
        context = contexts.get(f"r{index}")
        return Outcome(
            messages[0]["status"],
            error.get("code"),
            round(ended[0], 6),  # virtual time: float sums, not clocks, differ
            bool(context is not None and context.cancelled.is_set()),
        )

    async def main() -> list[Outcome]:
        outcomes = await asyncio.gather(*(one(i, r) for i, r in enumerate(rollouts)))
        assert not runner.arming._waiting, "a finished rollout was left waiting to be armed"
        assert not runner._in_flight
        return list(outcomes)

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner_:
        return runner_.run(main())


# Each kind of time is offset by a sliver of its own, so no two events fall on one instant (the
# arming timer fires at a start plus ARM_AFTER_S, with no sliver). At a tie the loop may run
# either event first and both outcomes are right: a client leaving just as its rollout ends is
# seen by one path and not the other, for no fault of either.
RUN_SLIVER, DEADLINE_SLIVER, LEAVE_SLIVER = 1e-4, 3e-5, 7e-6

rollouts = st.builds(
    Rollout,
    start=st.sampled_from([0.0, 0.02, 0.06, 0.13]),
    run=st.sampled_from([0.0, 0.01, 0.04, 0.09, 0.3, 2.0]).map(lambda t: t + RUN_SLIVER),
    ending=st.sampled_from(["returns", "returns", "raises", "its_own_timeout", "shrugs"]),
    deadline=st.sampled_from([0.035, 0.08, 0.2, 1.0, 600.0]).map(lambda t: t + DEADLINE_SLIVER),
    leave=st.sampled_from([None, None, 0.005, 0.03, 0.07, 0.16, 0.5]).map(
        lambda t: None if t is None else t + LEAVE_SLIVER
    ),
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT_API_KEY", KEY)


class NotingArming(Arming):
    """Arming that notes when its timer fired (in the loop's virtual time)."""

    def __init__(self, after_s: float) -> None:
        super().__init__(after_s)
        self.fired: list[float] = []

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.fired.append(loop.time())
        super()._fire(loop)


def noticed(batch: list[Rollout], fired: list[float]) -> list[Rollout]:
    """`batch` with each client leaving when the late arming could see it: at once if its
    rollout's listener was armed by then, or when the timer armed it."""
    moved = []
    for rollout in batch:
        # no firing after it started: every rollout had ended before the timer was due
        armed_at = min((t for t in fired if t > rollout.start), default=rollout.start + ARM_AFTER_S)
        armed_at -= rollout.start
        assert armed_at <= ARM_AFTER_S + EPSILON, "a rollout was armed later than promised"
        leave = rollout.leave if rollout.leave is None else max(rollout.leave, armed_at)
        moved.append(Rollout(rollout.start, rollout.run, rollout.ending, rollout.deadline, leave))
    return moved


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rollouts, min_size=1, max_size=4))
def test_late_arming_ends_each_rollout_as_the_plain_path(batch: list[Rollout]) -> None:
    """Every rollout ends as the plain path ends it, with its client leaving at most
    `ARM_AFTER_S` later (when the late arming saw it go): same status, error, time, and
    whether the executor was told to stop. Deadlines are kept to the instant."""
    arming = NotingArming(ARM_AFTER_S)
    late = run(batch, arming)
    assert late == run(noticed(batch, arming.fired), Arming(0))
    if all(rollout.leave is None for rollout in batch):
        assert late == run(batch, Arming(0))


def test_the_generated_rollouts_reach_every_outcome() -> None:
    """The property above is not vacuous: deadlines, leavings and each ending are reached."""
    batch = [
        Rollout(0.0, 2.0, "returns", 0.08, None),  # past its deadline, armed late
        Rollout(0.0, 2.0, "returns", 0.035, None),  # past a deadline shorter than the delay
        Rollout(0.0, 2.0, "returns", 600.0, 0.07),  # its client leaves
        Rollout(0.02, 0.01, "raises", 600.0, 0.005),  # leaves, but it ends first
        Rollout(0.0, 0.3, "shrugs", 0.2, None),  # shrugs its deadline off
    ]
    plain, late = run(batch, Arming(0)), run(batch, Arming(ARM_AFTER_S))
    assert [(o.status, o.code) for o in late] == [
        (504, "rollout_timeout"),
        (504, "rollout_timeout"),
        (499, "client_disconnected"),
        (500, "rollout_failed"),
        (200, None),
    ]
    assert [o.ended for o in late[:2]] == pytest.approx([0.08, 0.035])
    assert late[:3] == plain[:3]
    assert late[0].told and late[2].told
    assert not late[4].told  # it answered: the deadline's cancellation was taken back
    assert plain[3].code == "client_disconnected"  # at once, the leaving is seen first


def test_arming_moved_to_a_new_loop_still_arms() -> None:
    """The loop the timer was set on closed with a rollout waiting (a test's loop, a server
    restarted in the same process): the next loop's rollouts are armed all the same."""
    arming = Arming(ARM_AFTER_S)
    abandoned, waiting = _Recorder(), _Recorder()

    async def leave_waiting() -> None:
        arming.arm_soon(abandoned, 600)

    async def wait_past_the_timer() -> None:
        arming.arm_soon(waiting, 600)
        await asyncio.sleep(ARM_AFTER_S * 2)  # virtual time: the timer is due within it

    with asyncio.Runner(loop_factory=VirtualClockLoop) as first:
        first.run(leave_waiting())
    with asyncio.Runner(loop_factory=VirtualClockLoop) as second:
        second.run(wait_past_the_timer())
    assert waiting.armed and not abandoned.armed
    assert not arming._waiting


def test_what_the_timer_arms_runs_in_no_rollouts_variables() -> None:
    """The timer is set by whichever rollout waits first; a listener it starts for another
    rollout must not run in the first one's context variables (nor keep them alive)."""
    arming = Arming(ARM_AFTER_S)
    owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner")
    seen: list[str | None] = []

    class Seeing:
        def arm(self) -> None:
            seen.append(owner.get(None))

    async def rollout(name: str) -> None:
        owner.set(name)
        arming.arm_soon(Seeing(), 600)
        await asyncio.sleep(ARM_AFTER_S * 2)  # virtual time

    async def both() -> None:
        await asyncio.gather(rollout("first"), rollout("second"))

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        runner.run(both())
    assert seen == [None, None]


def test_a_paused_loop_keeps_what_waits_there() -> None:
    """A loop stopped, not closed, with a rollout waiting may run again: another loop's
    rollouts get the plain path meanwhile, and the paused loop's timer still arms its own."""
    arming = Arming(ARM_AFTER_S)
    paused, elsewhere = _Recorder(), _Recorder()

    async def enter(recorder: _Recorder) -> None:
        arming.arm_soon(recorder, 600)

    first = VirtualClockLoop()
    try:
        first.run_until_complete(enter(paused))
        with asyncio.Runner(loop_factory=VirtualClockLoop) as second:
            second.run(enter(elsewhere))
        assert elsewhere.armed and not paused.armed
        first.run_until_complete(asyncio.sleep(ARM_AFTER_S * 2))
        assert paused.armed
    finally:
        first.close()


def test_a_second_loop_running_the_same_app_arms_at_once() -> None:
    """Another loop still runs the app in another thread: its state is not touched, and the
    rollouts of this loop get the plain path."""
    arming = Arming(ARM_AFTER_S)
    entered, release = threading.Event(), threading.Event()
    held = _Recorder()

    async def first_loop() -> None:
        arming.arm_soon(held, 600)
        entered.set()
        await asyncio.to_thread(release.wait)
        await asyncio.to_thread(held.done.wait, 10)  # this loop runs until its timer fired

    thread = threading.Thread(target=asyncio.run, args=(first_loop(),))
    thread.start()
    try:
        assert entered.wait(10)
        other = _Recorder()

        async def second_loop() -> None:
            arming.arm_soon(other, 600)

        asyncio.run(second_loop())
        assert other.armed
    finally:
        release.set()
        thread.join(10)
    assert held.armed, "the first loop's timer armed what waited there"


class _Recorder:
    def __init__(self) -> None:
        self.done = threading.Event()

    @property
    def armed(self) -> bool:
        return self.done.is_set()

    def arm(self) -> None:
        self.done.set()
