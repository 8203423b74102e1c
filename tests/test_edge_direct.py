"""The edge's direct dispatch of `POST /rollout` answers exactly as the plain path does.

The edge answers the hot route itself, past Starlette's error layer and router (a fast path:
about 54k instructions a rollout, some 10% of a request's whole cost in the server, counted
under callgrind). It stays only while it answers every request as the router would: the same
app is served twice on loopback, once as built and once with the direct route taken away, and
each generated request must get the same status, headers and body from both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.errors import InfrastructureError, TaskAppError

from .conftest import KEY, echo_rollout, make_config

VOLATILE = {"date", "server", "x-request-id", "content-length"}
"""Headers that differ between any two answers, whichever path made them (the length is
compared through the body)."""


def by_seed(request: Any, context: Any) -> Any:
    """An executor whose outcome the seed picks: each way an executor can end."""
    seed = request.env.seed or 0
    if seed % 5 == 1:
        raise TaskAppError(409, "seed_refused", f"seed {seed} is refused")
    if seed % 5 == 2:
        raise RuntimeError(f"seed {seed} broke")
    if seed % 5 == 3:
        raise InfrastructureError("policy_unreachable", f"seed {seed}: no policy")
    answer = echo_rollout(request, context)
    if seed % 5 == 4:  # an answer that cannot be encoded: the error escapes the runner
        answer.trajectories[0].steps[0].obs["unencodable"] = object()
    return answer


@pytest.fixture(scope="module")
def both() -> Iterator[tuple[str, str]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVIRONMENT_API_KEY", KEY)
        direct = create_task_app(make_config(rollout=by_seed))
        routed = create_task_app(make_config(rollout=by_seed))
        routed.direct = {}  # before the stack is built: every request goes through the router
        assert direct.direct and not routed.direct
        with serve_in_background(direct) as direct_url, serve_in_background(routed) as routed_url:
            yield direct_url, routed_url


def rollout_body(seed: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": f"r{seed}",
        "env": {"seed": seed, "config": {}},
        "policy": {"policy_name": "p", "config": {}},
        "mode": "eval",
        **extra,
    }


valid_bodies = st.builds(
    lambda seed, extra: json.dumps(rollout_body(seed, extra)).encode(),
    st.integers(0, 20),
    st.dictionaries(
        st.sampled_from(["record", "ops", "safety", "trace_correlation_id", "mode"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()),
        max_size=2,
    ),
)
broken_bodies = st.one_of(
    st.sampled_from(
        [
            b"",
            b"{",
            b"[]",
            b'{"run_id": "r", "env": {"seed": NaN}}',
            b'{"run_id": "r", "env": {"seed": 1e400}}',
            b"\xff\xfe",
            b'"just a string"',
        ]
    ),
    st.binary(max_size=40),
)
bodies = st.one_of(valid_bodies, valid_bodies, valid_bodies, broken_bodies)
"""Mostly valid requests, so that each way an executor ends is reached often."""
keys = st.sampled_from(
    [
        {"x-api-key": KEY},
        {"x-api-key": KEY},
        {"authorization": f"Bearer {KEY}"},
        {"x-api-key": "wrong"},
        {"authorization": "Basic abc"},
        {},
    ]
)
content_types = st.sampled_from(
    [
        {"content-type": "application/json"},
        {"content-type": "application/json"},
        {"content-type": "application/x+json"},
        {"content-type": "text/plain"},
        {},
    ]
)
headers = st.builds(lambda key, kind: {**key, **kind}, keys, content_types)


def answer(url: str, body: bytes, sent: dict[str, str], chunked: bool) -> tuple[Any, ...]:
    content: Any = iter([body]) if chunked else body  # an iterator is sent chunked
    response = httpx.post(f"{url}/rollout", content=content, headers=sent, timeout=30)
    kept = sorted((k, v) for k, v in response.headers.items() if k not in VOLATILE)
    return response.status_code, kept, response.content


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, sent=headers, chunked=st.booleans())
def test_the_direct_rollout_answers_as_the_router_does(
    both: tuple[str, str], body: bytes, sent: dict[str, str], chunked: bool
) -> None:
    direct_url, routed_url = both
    assert answer(direct_url, body, sent, chunked) == answer(routed_url, body, sent, chunked)
