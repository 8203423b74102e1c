"""Bad input gets a 4xx in the one envelope; executor failures are 500s without tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

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
