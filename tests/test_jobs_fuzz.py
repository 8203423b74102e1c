"""Fuzzing the jobs server: schemathesis against its own /openapi.json, served on loopback with
the key (no 5xx, no answer outside the documented schema), with random job ids and real ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette

from synth_ai.jobs import JobState, StreamSettings, create_jobs_app
from synth_ai.jobs.artifacts import valid_name
from synth_ai.jobs.openapi import ARTIFACT_NAME
from synth_ai.task import serve_in_background
from synth_ai.task.attempts import FailedAttempts

from .conftest import KEY

HEADERS = {"X-API-Key": KEY}
# a finished job's stream replays, waits out the grace and ends: each fuzzed stream is short
FAST = StreamSettings(end_grace_s=0.02, heartbeat_s=0.5)
ARTIFACT = "result.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ROUTES = [
    "GET /",
    "POST /api/jobs",
    "GET /api/jobs",
    "GET /api/jobs/{job_id}",
    "POST /api/jobs/{job_id}/cancel",
    "GET /api/jobs/{job_id}/events",
    "POST /api/jobs/{job_id}/events",
    "POST /api/jobs/{job_id}/stream-token",
    "GET /api/jobs/{job_id}/artifacts",
    "GET /api/jobs/{job_id}/artifacts/{name}",
    "PUT /api/jobs/{job_id}/artifacts/{name}",
    "GET /api/jobs/{job_id}/stream",
]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Starlette]]:
    app = create_jobs_app(tmp_path_factory.mktemp("jobs") / "jobs.db", settings=FAST)
    # the keyless cases present random tokens and keys: the failed-check limit has its own tests
    app.state.failed_attempts = FailedAttempts(limit=10**9)
    with serve_in_background(app) as url:
        yield url, app


def new_job(url: str, *events: dict[str, Any]) -> str:
    job_id = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
    if events:
        posted = httpx.post(
            f"{url}/api/jobs/{job_id}/events", json={"events": list(events)}, headers=HEADERS
        )
        assert posted.status_code == 201, posted.text
    return job_id


def finished_job(url: str, app: Starlette) -> str:
    """A job with a few events of each kind, an artifact, and a terminal status."""
    job_id = new_job(
        url,
        {"type": "job.status", "data": {"state": "running", "step": 0}},
        {"type": "rl.step.metric", "data": {"name": "loss", "value": 1.5, "split": "train"}},
        {"type": "system.log", "level": "warning", "message": "slow step"},
        {"type": "artifact.checkpoint", "data": {"kind": "ckpt", "url": f"/x/{ARTIFACT}"}},
        {"type": "job.status", "data": {"state": "succeeded"}},
    )
    path: Path = app.state.jobs.artifacts.path(job_id, ARTIFACT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"score": 0.5}')
    return job_id


def test_openapi_document_is_valid_3_1(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    response = httpx.get(f"{url}/openapi.json")  # public: no key
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    documented = [
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters"
    ]
    assert sorted(documented) == sorted(ROUTES)
    schemas = spec["components"]["schemas"]
    assert {"CreateJob", "EventIn", "JobEvent", "Job", "EventPage", "ErrorEnvelope"} <= set(schemas)
    stream = spec["paths"]["/api/jobs/{job_id}/stream"]["get"]["responses"]
    assert list(stream["200"]["content"]) == ["text/event-stream"]
    assert schemas["CreateJob"]["properties"]["kind"]["enum"] == ["custom"]


@settings(max_examples=300, deadline=None, database=None)
@given(name=st.from_regex(ARTIFACT_NAME).filter(lambda name: len(name) <= 128))
def test_documented_artifact_names_are_accepted(name: str) -> None:
    assert valid_name(name.rstrip("\n")), name  # a regex `$` also matches before a final \n


def status_events(operation: Any, job_id: str) -> st.SearchStrategy[Any]:
    """Cases posting one status event with a real state: jobs finish, and then refuse (409)."""

    def with_status(pair: tuple[Any, JobState]) -> Any:
        case, state = pair
        case.body = {"type": "job.status", "data": {"state": state.value}}
        return case

    cases = operation.as_strategy(path_parameters={"job_id": job_id})
    return st.tuples(cases, st.sampled_from(list(JobState))).map(with_status)


def strategies(operation: Any, jobs: tuple[str, Starlette], mode: GenerationMode) -> list[Any]:
    """Random job ids, and real ones: an open job, and a finished one with events and an
    artifact. Streams get only the finished job (and random ids), so each answers and ends."""
    url, app = jobs
    route = f"{operation.method.upper()} {operation.path}"
    found = [operation.as_strategy(generation_mode=mode)]
    if "{job_id}" not in route:
        return found
    real = [finished_job(url, app)]
    if not route.endswith("/stream"):
        real.append(new_job(url, {"type": "job.status", "data": {"state": "running"}}))
    for job_id in real:
        fixed = {"job_id": job_id}
        found.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    if "{name}" in route:
        fixed = {"job_id": real[0], "name": ARTIFACT}
        found.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    if route == "POST /api/jobs/{job_id}/events" and mode is GenerationMode.POSITIVE:
        found += [status_events(operation, job_id) for job_id in real]
    return found


def fuzz(
    jobs: tuple[str, Starlette],
    route: str,
    runs: list[tuple[GenerationMode, int, list[Any]]],
    headers: dict[str, str],
) -> Counter[tuple[str, int]]:
    """Each run's cases against one route, sent with `headers`; answers the statuses seen."""
    url, _ = jobs
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = {
        f"{op.method.upper()} {op.path}": op
        for op in (result.ok() for result in api.get_all_operations())
    }
    assert sorted(operations) == sorted(ROUTES)
    operation = operations[route]
    session = requests.Session()
    seen: Counter[tuple[str, int]] = Counter()

    def run(mode: GenerationMode, examples: int, checks: list[Any]) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=st.one_of(strategies(operation, jobs, mode)))
        def one(case: Any) -> None:
            response = case.call_and_validate(  # a hang is a read timeout
                base_url=url, session=session, headers=headers, checks=checks, timeout=10
            )
            seen[mode.value, response.status_code] += 1

        one()

    for mode, examples, checks in runs:
        run(mode, examples, checks)
    return seen


@pytest.mark.parametrize("route", ROUTES)
def test_jobs_openapi_fuzz(jobs: tuple[str, Starlette], route: str) -> None:
    """300 schema-valid cases per route, then 100 schema-violating ones, all with the key: never
    a 5xx, never an answer outside the schema (status, media type, body; each SSE event too)."""
    # schema-valid input is answered 2xx, or 404/409 about the job
    runs = [(GenerationMode.POSITIVE, 300, [*CHECKS, positive_data_acceptance])]
    if route != "GET /":
        # invalid input: the server may accept some (`limit=` is the default limit), but it
        # must answer with a documented status and body, never a 5xx
        runs.append((GenerationMode.NEGATIVE, 100, CHECKS))
    seen = fuzz(jobs, route, runs, HEADERS)
    if route == "GET /":
        assert seen.total() >= 1, seen  # no input to vary
        return
    positive = {status: n for (mode, status), n in seen.items() if mode == "positive"}
    assert sum(positive.values()) >= 300, seen
    if "{job_id}" in route:  # the handlers behind the 404 ran too
        assert any(200 <= status < 300 for status in positive), seen
    if route == "POST /api/jobs/{job_id}/events":
        assert 409 in positive, seen  # a finished job's state is final


@pytest.mark.parametrize("route", [route for route in ROUTES if route != "GET /"])
def test_jobs_openapi_fuzz_without_a_key(jobs: tuple[str, Starlette], route: str) -> None:
    """The same cases with no key (and random stream tokens where a route takes one): every
    answer is a documented 401, whatever the input, for real jobs and missing ones alike, so
    nothing is read or changed (the upload included) and nothing tells which jobs exist."""
    runs = [(GenerationMode.POSITIVE, 100, CHECKS), (GenerationMode.NEGATIVE, 50, CHECKS)]
    seen = fuzz(jobs, route, runs, {})
    assert {status for _, status in seen} == {401}, seen
