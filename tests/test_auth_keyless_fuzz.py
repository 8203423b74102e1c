"""Schemathesis against the jobs server with no key: every operation but the public root is a
401 in the envelope, whatever the input, the upload included (it answered 201 with no key).

The refusal comes before any lookup or validation, so a keyless caller cannot tell a real job
from a missing one, nor a valid body from a malformed one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from starlette.applications import Starlette

from synth_ai.jobs import StreamSettings, create_jobs_app
from synth_ai.task import serve_in_background

from .conftest import KEY

PUBLIC = {"GET /"}


@pytest.fixture
def jobs(database_url: str) -> Iterator[tuple[str, str]]:
    """A server per engine, and a job of its own with an artifact (a real id to aim at)."""
    app: Starlette = create_jobs_app(database_url, settings=StreamSettings(end_grace_s=0.02))
    with serve_in_background(app) as url:
        headers = {"X-API-Key": KEY}
        job_id = httpx.post(f"{url}/api/jobs", json={}, headers=headers).json()["job_id"]
        stored = httpx.put(
            f"{url}/api/jobs/{job_id}/artifacts/result.json", content=b"{}", headers=headers
        )
        assert stored.status_code == 201
        yield url, job_id


def operations(url: str) -> dict[str, Any]:
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return {
        f"{op.method.upper()} {op.path}": op
        for op in (result.ok() for result in api.get_all_operations())
    }


KEY_HEADERS = ("x-api-key", "x-api-keys", "authorization", "cookie")


def assert_keyless_refused(url: str, route: str, cases: list[Any]) -> None:
    session = requests.Session()

    @settings(
        max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=st.one_of(cases))
    def keyless(case: Any) -> None:
        sent = case.headers or {}
        case.headers = {k: v for k, v in sent.items() if k.lower() not in KEY_HEADERS}
        response = case.call(base_url=url, session=session, timeout=10)
        assert response.status_code == 401, (route, response.status_code, response.text)
        assert response.json()["detail"]["error"]["code"] == "unauthorised"

    keyless()


def test_every_operation_but_the_root_needs_a_key(jobs: tuple[str, str]) -> None:
    url, job_id = jobs
    found = operations(url)
    assert "PUT /api/jobs/{job_id}/artifacts/{name}" in found
    for route, operation in sorted(found.items()):
        if route in PUBLIC:
            continue
        cases = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
        if "{job_id}" in route:
            fixed = {"job_id": job_id}
            if "{name}" in route:
                fixed["name"] = "result.json"
            cases.append(operation.as_strategy(path_parameters=fixed))
        assert_keyless_refused(url, route, cases)
    stored = httpx.get(f"{url}/api/jobs/{job_id}/artifacts/result.json", headers={"X-API-Key": KEY})
    assert stored.content == b"{}"  # no keyless upload landed
