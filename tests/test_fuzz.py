"""Fuzzing: schemathesis against the math app's own /openapi.json, served on loopback with the
key (no 5xx, no response outside the documented schema), and hypothesis over auth headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from synth_ai.examples.math_task_app import build_config
from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.attempts import FailedAttempts
from synth_ai.task.auth import MAX_PRESENTED_KEYS, presented_from

from .conftest import KEY, read_whole_body, replaying

INFERENCE_KEYS = ("inference_url", "api_base", "base_url")


class PinPolicy:
    """Points every generated rollout at the loopback offline policy.

    Fuzzed bodies name random inference hosts; following them would send traffic off this
    machine. Everything else in the body reaches the app as generated.
    """

    def __init__(self, app: ASGIApp, policy_url: str) -> None:
        self.app, self.policy_url = app, policy_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/rollout":
            await self.app(scope, receive, send)
            return
        body = await read_whole_body(receive)
        try:
            data = json.loads(body)
            config = data["policy"]["config"]
            if any(key in config for key in INFERENCE_KEYS):
                for key in INFERENCE_KEYS:
                    config.pop(key, None)
                config["inference_url"] = self.policy_url
                body = json.dumps(data).encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # not a shape to pin: let the app judge it
        await self.app(scope, replaying(body, receive), send)


@pytest.fixture(scope="module")
def fuzz_url(offline_policy_url: str) -> Iterator[str]:
    config = build_config()
    config.middleware = [Middleware(PinPolicy, policy_url=offline_policy_url)]
    app = create_task_app(config)
    app.state.failed_attempts = FailedAttempts(limit=10**9)  # the limit has its own tests
    with serve_in_background(app) as url:
        yield url


ROUTES = ["GET /", "GET /health", "GET /info", "GET /task_info", "POST /rollout"]


@pytest.mark.parametrize("route", ROUTES)
def test_openapi_fuzz(fuzz_url: str, route: str) -> None:
    """300 generated cases per route: never a 5xx, never an answer outside the schema."""
    api = schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")
    operations = {
        f"{op.method.upper()} {op.path}": op
        for op in (result.ok() for result in api.get_all_operations())
    }
    assert sorted(operations) == sorted(ROUTES)
    seen = 0

    @settings(
        max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=operations[route].as_strategy())
    def fuzz(case: Any) -> None:
        nonlocal seen
        seen += 1
        case.call_and_validate(
            base_url=fuzz_url,
            headers={"X-API-Key": KEY},
            # an executor may reject schema-valid input with a documented 422 (the math app
            # wants a known split and an inference_url): that is not a contract violation
            excluded_checks=[positive_data_acceptance],
        )

    fuzz()
    assert seen >= min(300, 1) and (route in ("GET /", "GET /health", "GET /info") or seen >= 300)


NAMES = ("x-api-key", "x-api-keys", "authorization")  # the order presented_from takes
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    headers=st.dictionaries(
        st.sampled_from(["x-api-key", "x-api-keys", "authorization", "X-Api-Key"]),
        header_values,
        max_size=3,
    ),
    valid=st.booleans(),
)
def test_auth_headers_fuzz(fuzz_url: str, headers: dict[str, str], valid: bool) -> None:
    sent = {k: v.strip() for k, v in headers.items()}
    if valid:
        sent["x-api-keys"] = f"{sent.get('x-api-keys', 'x')},{KEY}"
    encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in sent.items()]
    first = {name: next((v for k, v in sent.items() if k.lower() == name), None) for name in NAMES}
    too_many = len(presented_from(*first.values())) > MAX_PRESENTED_KEYS
    response = httpx.get(f"{fuzz_url}/health", headers=encoded)
    assert response.status_code == (200 if valid and not too_many else 401), response.text
    if response.status_code == 401:
        error = response.json()["detail"]["error"]
        assert error["code"] == ("too_many_keys" if too_many else "unauthorised")
        for value in sent.values():
            if len(value) >= 8:
                assert value not in response.text
