"""The trace viewer's optimization filter on each engine: an optimization's rollouts by job and
by candidate, their ids taken literally (`_` and `%` are no wildcards), hostile values a 422."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from synth_ai.task import serve_in_background
from synth_ai.tracing_v3 import SessionTracer, TraceStore
from synth_ai.ui import create_traces_app

from .conftest import KEY
from .postgres import database_url  # noqa: F401  (fixture)

SESSIONS = [
    "pl-caaa-job_1-r1",
    "pl-caaa-job_1-r2",
    "pl-cbbb-job_1-r3",
    "pl-caaa-jobX1-r4",  # `_` in job_1 must not match X
    "pl-caaa-job_12-r5",  # another job whose id starts the same
    "eval-job_1-r6",  # not an optimizer's rollout
]


def fill(url: str) -> None:
    async def record(tracer: SessionTracer) -> None:
        for session_id in SESSIONS:
            async with tracer.session(session_id, {"run_id": session_id.split("-")[1]}) as s:
                s.record_outcome_reward(1.0)

    store = TraceStore(url)
    try:
        asyncio.run(record(SessionTracer(store)))
        assert store.flush(10)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"job": "job_1"}, {"pl-caaa-job_1-r1", "pl-caaa-job_1-r2", "pl-cbbb-job_1-r3"}),
        ({"job": "job_1", "candidate": "caaa"}, {"pl-caaa-job_1-r1", "pl-caaa-job_1-r2"}),
        ({"candidate": "cbbb"}, {"pl-cbbb-job_1-r3"}),
        ({"job": "job_12"}, {"pl-caaa-job_12-r5"}),
        ({"job": "nojob"}, set()),
    ],
)
def test_sessions_by_job_and_candidate(
    database_url: str,  # noqa: F811
    tmp_path: Path,
    query: dict[str, str],
    expected: set[str],
) -> None:
    fill(database_url)
    with serve_in_background(create_traces_app(database_url)) as url:
        answer = httpx.get(f"{url}/api/traces/sessions", params=query, headers={"X-API-Key": KEY})
        assert answer.status_code == 200, answer.text
        assert {s["session_id"] for s in answer.json()["sessions"]} == expected


@pytest.mark.parametrize("value", ["%", "job-1", "a" * 65, "x' OR 1=1 --", "job 1"])
def test_a_filter_that_is_not_an_id_is_refused(tmp_path: Path, value: str) -> None:
    fill(str(tmp_path / "traces.db"))
    with serve_in_background(create_traces_app(str(tmp_path / "traces.db"))) as url:
        for name in ("job", "candidate"):
            answer = httpx.get(
                f"{url}/api/traces/sessions", params={name: value}, headers={"X-API-Key": KEY}
            )
            assert answer.status_code == 422
            error = answer.json()["detail"]["error"]
            assert error["code"] == "invalid_request" and name in error["message"]
