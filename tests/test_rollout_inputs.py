"""Rollout inputs the framework reads for the executor: the cid, its cap, the inference URL, and
executors in every shape (issue 26 items 16, 19, 21; issue 25 item 6)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth_ai.task import RolloutResponse, create_task_app, serve_in_background
from synth_ai.task.contracts import MAX_ID_CHARS

from .conftest import auth_headers, make_config, rollout_body


def seen_by_executor(request: Any, context: Any) -> dict[str, Any]:
    """Answers what the framework handed it, and builds (never sends) the inference call an
    executor would make, so a URL httpx cannot use fails here as it would in a real app."""
    if context.inference_url is not None:
        httpx.Request("POST", context.inference_url)
    return {
        "run_id": request.run_id,
        "metrics": {"outcome_score": 1.0},
        "pipeline_metadata": {"seen_cid": context.correlation_id},
    }


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serve_in_background(create_task_app(make_config(seen_by_executor))) as url:
        yield url


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/rollout", json=body, headers=auth_headers(), timeout=30)


def test_the_cid_of_a_misplaced_query_is_read_from_the_normalised_url(app_url: str) -> None:
    body = rollout_body(
        policy={"config": {"inference_url": "http://h?cid=abc/v1/chat/completions"}}
    )
    response = post(app_url, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["pipeline_metadata"]["seen_cid"] == "abc"
    assert answer["trace_correlation_id"] == "abc"
    assert answer["inference_url"] == "http://h/v1/chat/completions?cid=abc"


@pytest.mark.parametrize("length", [MAX_ID_CHARS + 1, 100_000])
@pytest.mark.parametrize("where", ["policy_config", "url_cid", "url_trace"])
def test_a_cid_past_the_id_cap_is_refused_wherever_it_comes_from(
    app_url: str, where: str, length: int
) -> None:
    cid = "c" * length
    config: dict[str, Any] = {
        "policy_config": {"trace_correlation_id": cid},
        "url_cid": {"inference_url": f"http://h/v1?cid={cid}"},
        "url_trace": {"inference_url": f"http://h/v1?trace={cid}"},
    }[where]
    response = post(app_url, rollout_body(policy={"config": config}))
    assert response.status_code == 422, response.text[:300]
    error = response.json()["detail"]["error"]
    assert error["code"] == "invalid_request"
    assert len(response.text) < 2000  # the id is not echoed back


def test_a_cid_at_the_cap_is_taken(app_url: str) -> None:
    cid = "c" * MAX_ID_CHARS
    response = post(app_url, rollout_body(policy={"config": {"trace_correlation_id": cid}}))
    assert response.status_code == 200 and response.json()["trace_correlation_id"] == cid


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1./v1",
        "http://[::1/v1",
        "http://h:99999/v1",
        "http://h:-1/v1",
        "ftp://h/v1",
        "http://:80/v1",
    ],
)
def test_a_malformed_inference_url_is_a_422_never_blamed_on_the_executor(
    app_url: str, url: str
) -> None:
    response = post(app_url, rollout_body(policy={"config": {"inference_url": url}}))
    assert response.status_code == 422, response.text
    error = response.json()["detail"]["error"]
    assert error["code"] == "invalid_request"
    assert error["errors"][0]["loc"] == ["body", "policy", "config", "inference_url"]


host_part = st.one_of(
    st.sampled_from(["127.0.0.1", "h", "[::1]", "example.com", "", "1.", "[::1", "h h"]),
    st.text(max_size=12),
)
port_part = st.one_of(
    st.just(""), st.integers(-5, 70_000).map(lambda p: f":{p}"), st.text(max_size=6)
)
tail_part = st.one_of(
    st.sampled_from(["", "/v1", "/v1/chat/completions", "?cid=x", "?cid=x/v1/chat/completions"]),
    st.text(max_size=12),
)
urls = st.one_of(
    st.builds(
        lambda s, h, p, t: f"{s}://{h}{p}{t}",
        st.sampled_from(["http", "https", "HTTP", "x"]),
        host_part,
        port_part,
        tail_part,
    ),
    st.text(max_size=40),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(url=urls)
def test_no_inference_url_is_a_server_error(app_url: str, url: str) -> None:
    response = post(app_url, rollout_body(policy={"config": {"inference_url": url}}))
    assert response.status_code in (200, 422), (url, response.text[:300])
    if response.status_code == 422:
        assert response.json()["detail"]["error"]["code"] == "invalid_request"


async def _async_rollout(request: Any, context: Any) -> RolloutResponse:
    await asyncio.sleep(0)
    return RolloutResponse(run_id=request.run_id, metrics={"outcome_score": 0.5})


def plain_decorator(executor: Any) -> Any:
    """A decorator as users write them: a plain `def` that passes the call through."""

    @functools.wraps(executor)
    def wrapper(*args: Any) -> Any:
        return executor(*args)

    return wrapper


class CallableReturningCoroutine:
    def __call__(self, request: Any, context: Any) -> Any:
        return _async_rollout(request, context)


@pytest.mark.parametrize(
    "executor", [plain_decorator(_async_rollout), CallableReturningCoroutine()], ids=["def", "obj"]
)
def test_an_async_executor_behind_a_plain_def_is_awaited(executor: Any) -> None:
    with serve_in_background(create_task_app(make_config(executor))) as url:
        response = post(url, rollout_body())
    assert response.status_code == 200, response.text
    assert response.json()["metrics"]["outcome_score"] == 0.5
