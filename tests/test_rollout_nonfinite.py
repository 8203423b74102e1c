"""Non-finite numbers anywhere in a `/rollout` body (`NaN`, `Infinity`, literals that overflow
a float), in typed fields or free-form ones (`env.config`, `policy.config`, ops), are a 422
`invalid_request` in the envelope: never accepted, never a 5xx. Real uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_ai.task import create_task_app, serve_in_background

from .conftest import auth_headers, make_config

MARK = "__NONFINITE__"
LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e309", "1" + "0" * 400 + ".5"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serve_in_background(create_task_app(make_config())) as url:
        yield url


def post(url: str, text: str) -> httpx.Response:
    headers = {**auth_headers(), "content-type": "application/json"}
    return httpx.post(f"{url}/rollout", content=text.encode(), headers=headers, timeout=30)


def with_mark(value: Any, path: list[Any]) -> Any:
    """`value` with the mark placed at `path` (as deep as the value lets it go)."""
    if not path:
        return MARK
    if isinstance(value, dict):
        key = path[0] if isinstance(path[0], str) else "k"
        return {**value, key: with_mark(value.get(key), path[1:])}
    if isinstance(value, list) and value:
        index = path[0] % len(value) if isinstance(path[0], int) else 0
        return [*value[:index], with_mark(value[index], path[1:]), *value[index + 1 :]]
    return [with_mark(None, path[1:])]


PLACES = st.sampled_from(
    [
        ["env", "config"],
        ["policy", "config"],
        ["env", "config", "nested"],
        ["policy", "config", "extra", 0],
        ["ops", 0],
        ["record", "anything"],
        ["metadata"],
        ["env", "seed"],
        ["policy", "config", "temperature"],
        ["safety", "max_time_s"],
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    place=PLACES,
    deeper=st.lists(st.text(max_size=4) | st.integers(0, 3), max_size=3),
    filler=JSON,
    literal=st.sampled_from(LITERALS),
)
def test_any_non_finite_number_in_a_rollout_body_is_422(
    served: str, place: list[Any], deeper: list[Any], filler: Any, literal: str
) -> None:
    body: dict[str, Any] = {
        "run_id": "r",
        "env": {"seed": 1, "config": {}},
        "policy": {"config": {}},
    }
    path = [*place, *deeper]
    body = with_mark(body, path) if len(path) > 1 else {**body, path[0]: MARK}
    text = json.dumps(body).replace(f'"{MARK}"', literal)
    assert literal in text
    response = post(served, text)
    assert response.status_code == 422, (text, response.text)
    error = response.json()["detail"]["error"]
    assert error["code"] == "invalid_request"
    assert error["message"]


def test_the_same_body_with_finite_numbers_is_answered(served: str) -> None:
    text = (
        '{"run_id": "r", "env": {"seed": 1, "config": {"x": 1e300}},'
        ' "policy": {"config": {"y": [1.5, -1e-300]}}}'
    )
    assert post(served, text).status_code == 200
