"""`/openapi.json` is valid OpenAPI 3.1; each request is logged once, with its correlation id."""

from __future__ import annotations

import logging

import pytest
from openapi_spec_validator import validate

from synth_ai.task import create_task_app

from .conftest import KEY, InProcess, make_config, rollout_body


def test_openapi_document_is_valid_3_1() -> None:
    client = InProcess(create_task_app(make_config()))
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    schemas = spec["components"]["schemas"]
    assert {"RolloutRequest", "RolloutResponse", "TaskInfo", "ErrorEnvelope"} <= schemas.keys()
    assert set(spec["paths"]) == {"/", "/health", "/info", "/task_info", "/rollout"}


def test_one_access_line_per_request_with_the_correlation_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = InProcess(create_task_app(make_config()))
    with caplog.at_level(logging.INFO, logger="synth_ai.task.access"):
        client.post("/rollout", json=rollout_body(7), headers={"X-API-Key": KEY})
        client.get("/nope", headers={"X-API-Key": KEY})
    lines = [r.getMessage() for r in caplog.records if r.name == "synth_ai.task.access"]
    assert len(lines) == 2
    method, path, status, duration, cid = lines[0].split(" ")
    assert (method, path, status, cid) == ("POST", "/rollout", "200", "cid=run-7")
    assert duration.endswith("ms") and float(duration[:-2]) >= 0
    assert lines[1].startswith("GET /nope 404 ") and lines[1].endswith("cid=-")
