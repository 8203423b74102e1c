"""Bad input gets a 4xx in the one envelope; executor failures are 500s without tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_ai.task import InfrastructureError, create_task_app, serve_in_background
from synth_ai.task.contracts import ErrorEnvelope

from .conftest import KEY, InProcess, make_config, rollout_body

HEADERS = {"X-API-Key": KEY}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    ErrorEnvelope.model_validate(response.json())
    error = response.json()["detail"]["error"]
    assert error["code"] == code
    assert error["message"]
    return error


@pytest.fixture(scope="module")
def client() -> InProcess:
    return InProcess(create_task_app(make_config(max_request_bytes=2048)))


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serve_in_background(create_task_app(make_config(max_request_bytes=2048))) as url:
        yield url


def test_malformed_json(client: InProcess) -> None:
    response = client.post(
        "/rollout", content=b'{"run_id": ', headers={**HEADERS, "content-type": "application/json"}
    )
    assert_envelope(response, 400, "invalid_json")


def test_wrong_content_type(client: InProcess) -> None:
    response = client.post(
        "/rollout", content=b"run_id=1", headers={**HEADERS, "content-type": "text/plain"}
    )
    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ([1, 2], []),
        ({"env": {"seed": 1}}, []),
        ({"run_id": "r", "env": {"seed": "abc"}}, ["env", "seed"]),
        ({"run_id": "r", "mode": "train"}, ["mode"]),
        ({"run_id": "r", "safety": {"max_time_s": -1}}, ["safety", "max_time_s"]),
    ],
)
def test_invalid_rollout_requests_list_their_errors(
    client: InProcess, body: Any, loc: list[str]
) -> None:
    error = assert_envelope(
        client.post("/rollout", json=body, headers=HEADERS), 422, "invalid_request"
    )
    assert all(set(item) == {"loc", "msg", "type"} for item in error["errors"])
    assert error["errors"][0]["loc"] == loc


def test_body_over_the_limit_by_content_length(served: str) -> None:
    body = rollout_body(padding="x" * 4096)
    response = httpx.post(f"{served}/rollout", json=body, headers=HEADERS)
    assert_envelope(response, 413, "request_too_large")


def test_body_over_the_limit_while_streaming(served: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"run_id": "r", "padding": "'
        for _ in range(64):
            yield b"x" * 256
        yield b'"}'

    response = httpx.post(
        f"{served}/rollout",
        content=chunks(),
        headers={**HEADERS, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "request_too_large")


def test_non_integer_seeds(client: InProcess) -> None:
    for query in ("seed=abc", "seeds=1.5", "seed=1&seed=", "seeds=1,x"):
        response = client.get(f"/task_info?{query}", headers=HEADERS)
        error = assert_envelope(response, 422, "invalid_request")
        assert error["errors"][0]["loc"][0] == "query"


def test_too_many_seeds(client: InProcess) -> None:
    query = "&".join(f"seed={i}" for i in range(1001))
    assert_envelope(client.get(f"/task_info?{query}", headers=HEADERS), 422, "invalid_request")


def test_unknown_route_and_wrong_method(client: InProcess) -> None:
    assert_envelope(client.get("/nope", headers=HEADERS), 404, "not_found")
    assert_envelope(client.get("/rollout", headers=HEADERS), 405, "method_not_allowed")
    assert_envelope(client.post("/health", headers=HEADERS), 405, "method_not_allowed")


def test_an_executor_that_raises_is_rollout_failed_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: Any, context: Any) -> dict[str, Any]:
        raise ValueError("the env exploded")

    with caplog.at_level(logging.ERROR, logger="synth_ai.task.rollout"):
        response = InProcess(create_task_app(make_config(broken))).post(
            "/rollout", json=rollout_body(), headers=HEADERS
        )
    error = assert_envelope(response, 500, "rollout_failed")
    assert error["exception_type"] == "ValueError"
    assert "the env exploded" in error["message"]
    assert "Traceback" not in response.text and "broken" not in response.text
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and logged[0].exc_info[0] is ValueError


def test_an_executor_answering_garbage_is_reported() -> None:
    def garbage(request: Any, context: Any) -> Any:
        return {"trajectories": "not a list"}

    response = InProcess(create_task_app(make_config(garbage))).post(
        "/rollout", json=rollout_body(), headers=HEADERS
    )
    assert_envelope(response, 500, "invalid_rollout_response")


def test_an_infrastructure_error_is_marked_not_scored() -> None:
    async def down(request: Any, context: Any) -> Any:
        raise InfrastructureError("inference_unreachable", "policy server is down")

    response = InProcess(create_task_app(make_config(down))).post(
        "/rollout", json=rollout_body(), headers=HEADERS
    )
    assert response.status_code == 200
    data = response.json()
    assert data["aborted"] is True
    assert data["metrics"]["details"]["infra_error"] == {
        "kind": "inference_unreachable",
        "message": "policy server is down",
    }


# --- numbers, ids and seeds are refused at the edge, never a 500 ------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e309", "9e99999"]
WRONG_TYPES = ['"abc"', '"0.5"', '"5"', "true", "false", "[]", "{}", "[0.5]", '{"v": 1}']
POLICY_NUMBERS = {
    # field: (in range, out of range)
    "temperature": (["0", "0.0", "1", "2.5", "10"], ["-0.01", "10.5", "1e30"]),
    "top_p": (["0", "0.9", "1"], ["-1", "1.01", "100"]),
    "max_tokens": (["1", "512", "10000000"], ["0", "-5", "10000001", "1.5", "512.0"]),
    "max_completion_tokens": (["1", "4096"], ["0", "10000001", "99999999999999999999999"]),
    "timeout_s": (["0.001", "30", "86400"], ["0", "-1", "86400.5", "1e10"]),
}


@pytest.fixture(scope="module")
def roomy() -> Iterator[str]:
    with serve_in_background(create_task_app(make_config())) as url:
        yield url


def post_raw(url: str, body: str) -> httpx.Response:
    headers = {**HEADERS, "content-type": "application/json"}
    return httpx.post(f"{url}/rollout", content=body.encode(), headers=headers, timeout=30)


def policy_body(field: str, literal: str) -> str:
    return f'{{"run_id": "r", "policy": {{"config": {{"{field}": {literal}}}}}}}'


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(sorted(POLICY_NUMBERS)),
    literal=st.one_of(
        st.sampled_from(NON_FINITE + WRONG_TYPES),
        st.integers(min_value=21, max_value=3000).map(lambda n: "9" * n),
        st.integers(min_value=309, max_value=100_000).map(lambda e: f"1e{e}"),
    ),
    sign=st.sampled_from(["", "-"]),
)
def test_non_finite_huge_and_mistyped_policy_numbers_are_422(
    roomy: str, field: str, literal: str, sign: str
) -> None:
    if sign and literal[0].isdigit():
        literal = sign + literal
    response = post_raw(roomy, policy_body(field, literal))
    error = assert_envelope(response, 422, "invalid_request")
    assert error["errors"][0]["loc"] == ["policy", "config", field], literal


@pytest.mark.parametrize("field", sorted(POLICY_NUMBERS))
def test_policy_number_ranges(roomy: str, field: str) -> None:
    good, bad = POLICY_NUMBERS[field]
    for literal in [*good, "null"]:
        assert post_raw(roomy, policy_body(field, literal)).status_code == 200, literal
    for literal in bad:
        response = post_raw(roomy, policy_body(field, literal))
        error = assert_envelope(response, 422, "invalid_request")
        assert error["errors"][0]["loc"] == ["policy", "config", field], literal


@settings(max_examples=60, deadline=None)
@given(
    temperature=st.floats(0, 10),
    top_p=st.floats(0, 1),
    max_tokens=st.integers(1, 10_000_000),
    timeout_s=st.floats(0, 86_400, exclude_min=True),
)
def test_every_value_in_range_is_accepted_and_one_past_it_is_not(
    roomy: str, temperature: float, top_p: float, max_tokens: int, timeout_s: float
) -> None:
    config = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
    config["timeout_s"] = timeout_s
    body = {"run_id": "r", "policy": {"config": config}}
    assert httpx.post(f"{roomy}/rollout", json=body, headers=HEADERS).status_code == 200
    past = {"temperature": 10.001, "top_p": 1.001, "max_tokens": 10_000_001, "timeout_s": 86_401}
    for field, value in past.items():
        body = {"run_id": "r", "policy": {"config": {**config, field: value}}}
        response = httpx.post(f"{roomy}/rollout", json=body, headers=HEADERS)
        error = assert_envelope(response, 422, "invalid_request")
        assert [e["loc"] for e in error["errors"]] == [["policy", "config", field]]


ID_FIELDS = [
    ("run_id",),
    ("trace_correlation_id",),
    ("env", "env_id"),
    ("env", "env_name"),
    ("policy", "policy_id"),
    ("policy", "policy_name"),
    ("policy", "config", "model"),
]


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"run_id": "r"}
    target = body
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return body


@pytest.mark.parametrize("path", ID_FIELDS, ids=[".".join(p) for p in ID_FIELDS])
def test_ids_and_names_are_capped_at_256_characters(roomy: str, path: tuple[str, ...]) -> None:
    ok = httpx.post(f"{roomy}/rollout", json=nested(path, "x" * 256), headers=HEADERS)
    assert ok.status_code == 200, ok.text
    for value in ("x" * 257, "\u00e9" * 300, "x" * 100_000):
        response = httpx.post(f"{roomy}/rollout", json=nested(path, value), headers=HEADERS)
        error = assert_envelope(response, 422, "invalid_request")
        assert error["errors"][0]["loc"] == list(path)
        assert "x" * 257 not in response.text


@pytest.mark.parametrize("literal", NON_FINITE)
def test_safety_max_time_must_be_finite(roomy: str, literal: str) -> None:
    body = f'{{"run_id": "r", "safety": {{"max_time_s": {literal}}}}}'
    error = assert_envelope(post_raw(roomy, body), 422, "invalid_request")
    assert error["errors"][0]["loc"] == ["safety", "max_time_s"]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.one_of(
        st.integers(min_value=2**63).map(str),
        st.integers(max_value=-(2**63) - 1).map(str),
        st.integers(min_value=20, max_value=10_000).map(lambda n: "7" * n),
    )
)
def test_seeds_beyond_int64_are_refused_in_task_info_and_rollouts(roomy: str, seed: str) -> None:
    response = httpx.get(f"{roomy}/task_info?seed={seed}", headers=HEADERS)
    error = assert_envelope(response, 422, "invalid_request")
    assert error["errors"][0]["loc"] == ["query", "seed"]
    assert len(response.text) < 1000
    body = f'{{"run_id": "r", "env": {{"seed": {seed}}}}}'
    if len(seed.lstrip("-")) > 4300:  # pydantic's JSON parser stops there: not JSON to it
        assert_envelope(post_raw(roomy, body), 400, "invalid_json")
        return
    error = assert_envelope(post_raw(roomy, body), 422, "invalid_request")
    assert error["errors"][0]["loc"] == ["env", "seed"]


def test_int64_is_the_seed_range(roomy: str) -> None:
    for seed in (2**63 - 1, -(2**63), 0):
        response = httpx.get(f"{roomy}/task_info?seed={seed}", headers=HEADERS)
        assert response.status_code == 200
        assert response.json()["task_metadata"]["seed"] == seed
    for seed in (2**63, -(2**63) - 1):
        response = httpx.get(f"{roomy}/task_info?seed={seed}", headers=HEADERS)
        assert_envelope(response, 422, "invalid_request")
    digits = "1" * 10_000
    response = httpx.get(f"{roomy}/task_info?seeds=1,{digits}", headers=HEADERS)
    assert_envelope(response, 422, "invalid_request")
