"""The jobs API refuses bad input at the edge, keeps finished jobs finished, and bounds memory.

Each case posts raw bytes to a real server on loopback, then checks both the answer (a 4xx in
the error envelope, never a 500) and that nothing was stored.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from synth_ai.eval import EvalJobKind
from synth_ai.jobs import (
    JobBus,
    JobEmitter,
    JobEvent,
    JobsService,
    JobState,
    StreamSettings,
    create_jobs_app,
)
from synth_ai.task import serve_in_background

from .conftest import KEY

HEADERS = {"X-API-Key": KEY}
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]


@pytest.fixture(scope="module")
def jobs(module_database_url: str) -> Iterator[tuple[str, Starlette]]:
    """One server per engine: every test using it runs on SQLite and on PostgreSQL."""
    app = create_jobs_app(
        module_database_url,
        settings=StreamSettings(end_grace_s=0.05),
        kinds={"eval": EvalJobKind()},
    )
    with serve_in_background(app) as url:
        yield url, app


def new_job(url: str) -> str:
    return httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]


def raw_post(url: str, path: str, body: str, content_type: str = "application/json") -> Any:
    return httpx.post(
        f"{url}{path}", content=body, headers={**HEADERS, "content-type": content_type}
    )


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["detail"]["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code


def events_of(url: str, job_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/api/jobs/{job_id}/events", headers=HEADERS).json()["events"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    literal=st.sampled_from(NON_FINITE),
    where=st.sampled_from(["data", "nested", "list", "ts", "config", "metadata"]),
)
def test_non_finite_numbers_are_refused_and_never_stored(
    jobs: tuple[str, Starlette], literal: str, where: str
) -> None:
    url, _ = jobs
    if where in ("config", "metadata"):
        before = httpx.get(f"{url}/api/jobs", params={"limit": 1000}, headers=HEADERS).json()
        body = f'{{"kind": "custom", "{where}": {{"lr": {literal}}}}}'
        assert_envelope(raw_post(url, "/api/jobs", body), 422, "invalid_request")
        after = httpx.get(f"{url}/api/jobs", params={"limit": 1000}, headers=HEADERS)
        assert after.status_code == 200 and len(after.json()["jobs"]) == len(before["jobs"])
        return
    job_id = new_job(url)
    event = {
        "data": f'{{"type": "rl.metric", "data": {{"name": "loss", "value": {literal}}}}}',
        "nested": f'{{"type": "rl.metric", "data": {{"a": {{"b": [1, {literal}]}}}}}}',
        "list": '{"events": [{"type": "x.log"}, '
        f'{{"type": "x.log", "data": {{"v": {literal}}}}}]}}',
        "ts": f'{{"type": "x.log", "ts": {literal}}}',
    }[where]
    assert_envelope(raw_post(url, f"/api/jobs/{job_id}/events", event), 422, "invalid_request")
    assert events_of(url, job_id) == []
    # the job still takes good events, numbered from 1: the refused post used up no seq
    good = httpx.post(
        f"{url}/api/jobs/{job_id}/events", json={"type": "x.log"}, headers=HEADERS
    ).json()
    assert good["seqs"] == [1]


def test_a_nan_stored_by_an_older_version_breaks_no_listing(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    app = create_jobs_app(db)
    with serve_in_background(app) as url:
        job_id = new_job(url)
        with sqlite3.connect(db) as connection:
            connection.execute(
                "UPDATE jobs SET metadata = ? WHERE job_id = ?", ['{"lr": NaN}', job_id]
            )
        listed = httpx.get(f"{url}/api/jobs", headers=HEADERS)
        assert listed.status_code == 200
        assert listed.json()["jobs"][0]["metadata"] == {"lr": None}
        assert httpx.get(f"{url}/api/jobs/{job_id}", headers=HEADERS).status_code == 200


def test_json_routes_take_only_json(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)
    for path, body in (("/api/jobs", "{}"), (f"/api/jobs/{job_id}/events", '{"type": "x.y"}')):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
            assert_envelope(raw_post(url, path, body, content_type), 415)
        assert_envelope(raw_post(url, path, "{not json"), 400, "invalid_json")
    assert events_of(url, job_id) == []


@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("stream", {"heartbeat": "abc"}, {}),
        ("stream", {"heartbeat": "nan"}, {}),
        ("stream", {"heartbeat": "0"}, {}),
        ("stream", {"since_id": str(2**64)}, {}),
        ("stream", {}, {"last-event-id": "9" * 40}),
        ("stream", {}, {"last-event-id": "-3"}),
        ("stream", {"types": "metric,bogus"}, {}),
        ("events", {"since_seq": str(2**63)}, {}),
        ("events", {"after": "x"}, {}),
        ("events", {"limit": "-1"}, {}),
        ("events", {"types": "<script>"}, {}),
        ("events", {"limit": "\u00b2"}, {}),  # '²' is a digit to str.isdigit, not to int()
        ("stream", {"since_id": "\u0661"}, {}),
    ],
)
def test_query_parameters_are_validated(
    jobs: tuple[str, Starlette], path: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    url, _ = jobs
    job_id = new_job(url)
    response = httpx.get(
        f"{url}/api/jobs/{job_id}/{path}", params=params, headers={**HEADERS, **headers}
    )
    assert_envelope(response, 422, "invalid_request")


def test_a_finished_job_stays_finished(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)
    done = {"type": "job.status", "data": {"state": "succeeded"}}
    assert httpx.post(f"{url}/api/jobs/{job_id}/events", json=done, headers=HEADERS).json() == {
        "seqs": [1]
    }
    back = {"events": [{"type": "x.log"}, {"type": "job.status", "data": {"state": "running"}}]}
    refused = httpx.post(f"{url}/api/jobs/{job_id}/events", json=back, headers=HEADERS)
    assert_envelope(refused, 409, "job_finished")
    snapshot = httpx.get(f"{url}/api/jobs/{job_id}", headers=HEADERS).json()
    assert snapshot["state"] == "succeeded" and snapshot["last_seq"] == 1
    assert [e["seq"] for e in events_of(url, job_id)] == [1]  # the whole post was refused
    canceled = httpx.post(f"{url}/api/jobs/{job_id}/cancel", headers=HEADERS)
    assert canceled.status_code == 200 and canceled.json()["state"] == "succeeded"
    late = httpx.post(f"{url}/api/jobs/{job_id}/events", json={"type": "x.log"}, headers=HEADERS)
    assert late.json()["seqs"] == [2]  # logs after the end are fine; no seq was used up


def test_huge_ids_are_neither_echoed_nor_looked_up(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = "j" * 60_000
    for method, path in (("GET", ""), ("POST", "/events"), ("GET", "/stream")):
        response = httpx.request(
            method, f"{url}/api/jobs/{job_id}{path}", json={"type": "x.y"}, headers=HEADERS
        )
        assert_envelope(response, 404, "job_not_found")
        assert len(response.text) < 400


def test_eval_jobs_name_no_path_and_carry_no_server_key(jobs: tuple[str, Starlette]) -> None:
    """An eval job may not choose where the server writes, and the task app it names gets
    the key its creator gave (here none), never the server's own ENVIRONMENT_API_KEY."""
    url, _ = jobs
    seen: list[dict[str, str]] = []

    async def capture(request: Request) -> Response:
        seen.append(dict(request.headers))
        return Response('{"detail": "no"}', status_code=404, media_type="application/json")

    catcher = Starlette(routes=[Route("/{path:path}", capture, methods=["GET", "POST"])])
    with serve_in_background(catcher) as capture_url:
        config = {"task_app_url": capture_url, "seeds": [1]}
        with_path = {**config, "out_path": "/tmp/evil.jsonl"}
        assert_envelope(
            httpx.post(
                f"{url}/api/jobs", json={"kind": "eval", "config": with_path}, headers=HEADERS
            ),
            422,
            "invalid_request",
        )
        refused = httpx.post(  # the preflight the server runs before it makes the job
            f"{url}/api/jobs", json={"kind": "eval", "config": config}, headers=HEADERS
        )
        assert_envelope(refused, 422, "preflight_failed")
    assert seen, "the eval job never called the task app"
    for headers in seen:
        assert KEY not in json.dumps(headers)


def test_the_replay_ring_is_bounded_in_bytes_and_replay_still_complete(tmp_path: Path) -> None:
    settings_ = StreamSettings(ring_bytes=64 * 1024, end_grace_s=0.05)
    app = create_jobs_app(tmp_path / "jobs.db", settings=settings_)
    message = "x" * 4000
    with serve_in_background(app) as url:
        job_id = new_job(url)
        batch = {"events": [{"type": "x.log", "message": message} for _ in range(100)]}
        assert httpx.post(f"{url}/api/jobs/{job_id}/events", json=batch, headers=HEADERS)
        service: JobsService = app.state.jobs
        bus = service.live_bus(job_id)
        assert bus is not None and bus.last_seq == 100
        assert bus.ring_bytes <= 64 * 1024
        assert bus.ring_after(0) is None  # the ring no longer reaches the start
        done = {"type": "job.status", "data": {"state": "succeeded"}}
        httpx.post(f"{url}/api/jobs/{job_id}/events", json=done, headers=HEADERS)

        async def replay() -> list[str]:
            async with (
                httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client,
                aconnect_sse(client, "GET", f"/api/jobs/{job_id}/stream") as source,
            ):
                return [sse.id async for sse in source.aiter_sse() if sse.event != "end"]

        ids = [i for i in asyncio.run(replay()) if i]
        assert ids == [str(seq) for seq in range(1, 102)]  # every event, from the log


def test_a_stalled_log_makes_replay_say_so_instead_of_skipping(tmp_path: Path) -> None:
    app = create_jobs_app(
        tmp_path / "jobs.db", settings=StreamSettings(ring_events=5, replay_timeout_s=0.2)
    )
    service: JobsService = app.state.jobs
    with serve_in_background(app) as url:
        job_id = new_job(url)
        batch = {"events": [{"type": "x.log"} for _ in range(50)]}
        httpx.post(f"{url}/api/jobs/{job_id}/events", json=batch, headers=HEADERS)
        stalled = asyncio.Event()

        async def stalled_log(*args: Any, **kwargs: Any) -> list[JobEvent]:
            await stalled.wait()  # the log does not answer (never set)
            return []

        service.events = stalled_log  # type: ignore[method-assign]

        async def replay() -> list[Any]:
            async with (
                httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client,
                aconnect_sse(client, "GET", f"/api/jobs/{job_id}/stream") as source,
            ):
                return [sse async for sse in source.aiter_sse()]

        frames = asyncio.run(replay())
    assert [f.event for f in frames if f.data] == ["reset"]  # no event skipped to go live
    assert json.loads(frames[-1].data)["last_seq"] == 50


def test_in_process_emits_acknowledge_only_after_the_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = JobsService(tmp_path / "jobs.db")
        try:
            job = await service.create("custom", {}, {})
            emitter = JobEmitter(service, job["job_id"])
            stored = await emitter.emit_committed("x.metric", data={"name": "loss", "value": 1.5})
            # a fresh connection sees it at once: the answer came after the commit
            with sqlite3.connect(tmp_path / "jobs.db") as connection:
                row = connection.execute(
                    "SELECT seq, data FROM job_events WHERE job_id = ?", [job["job_id"]]
                ).fetchone()
            assert row[0] == stored.seq == 1 and json.loads(row[1])["value"] == 1.5
            # fire-and-forget emits of NaN (a diverged loss) are kept, as null with a marker
            emitter.emit_metric("loss", float("nan"), step=2)
            emitter.emit_status(JobState.SUCCEEDED)
            assert await asyncio.to_thread(service.log.flush, 10)
            page = await service.events(job["job_id"], 1, 10, None)
            assert page[0].data["value"] is None and page[0].data["_nonfinite"] == {"value": "NaN"}
        finally:
            await service.close()

    asyncio.run(scenario())


def test_bus_ring_stays_contiguous_when_loaded_behind_the_log() -> None:
    bus = JobBus("j", last_seq=5, state=JobState.RUNNING)  # loaded when the log was at 5
    assert bus.ring_after(0) is None and bus.ring_after(5) == []
    bus.publish(JobEvent(seq=3, job_id="j", type="x.log"))  # already in the log: ignored
    bus.publish(JobEvent(seq=6, job_id="j", type="x.log"))
    assert [e.seq for e in bus.ring_after(5) or []] == [6]
    assert bus.ring_after(4) is None
    bus.publish(JobEvent(seq=9, job_id="j", type="x.log"))  # the log has 7 and 8: start afresh
    assert bus.ring_after(6) is None and [e.seq for e in bus.ring_after(8) or []] == [9]


def test_a_forged_token_is_refused_not_a_500(jobs: tuple[str, Starlette]) -> None:
    import base64

    url, _ = jobs
    job_id = new_job(url)
    payload = base64.urlsafe_b64encode(f"{job_id}||9999999999.000".encode()).decode()
    for signature in ("\u00e9", "zz", ""):
        answer = httpx.get(
            f"{url}/api/jobs/{job_id}/stream", params={"token": f"{payload}.{signature}"}
        )
        assert_envelope(answer, 401, "unauthorised")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SSE_HEARTBEAT_SECS", "0"),
        ("SSE_HEARTBEAT_SECS", "nan"),
        ("SSE_RING_BUFFER_BYTES", "-5"),
        ("SSE_MAX_CLIENTS", "lots"),
        ("SSE_RING_BUFFER_WINDOW_SECS", "0"),
        ("SSE_TOKEN_TTL_SECS", "1e400"),
    ],
)
def test_stream_settings_refuse_bad_values_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Refused when the server starts, naming the variable, not later by every stream."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        create_jobs_app(tmp_path / "jobs.db")


def test_jobs_serve_names_a_bad_setting_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from synth_ai.cli import main

    monkeypatch.setenv("SSE_HEARTBEAT_SECS", "0")
    result = CliRunner().invoke(main, ["jobs", "serve", "--db", str(tmp_path / "j.db")])
    assert result.exit_code == 2
    assert "SSE_HEARTBEAT_SECS: Input should be greater than or equal to 0.05" in result.output
    assert "Traceback" not in result.output


def test_a_full_log_queue_drops_metrics_but_never_a_final_status(tmp_path: Path) -> None:
    """In-process emits never block; when the log's queue is full, metrics give way (counted),
    while logs and the terminal status wait for room and are stored."""
    import threading

    async def scenario() -> list[JobEvent]:
        service = JobsService(tmp_path / "jobs.db")
        try:
            job = await service.create("custom", {}, {})
            writer = service.log._writer
            release = threading.Event()
            original = service.log._write
            released: list[bool] = []

            def stalled(appends: Any) -> Any:  # the disk is slow: nothing drains until released
                released.append(release.wait(60))
                return original(appends)

            writer._handle = stalled
            writer._queue.maxsize = 4
            emitter = JobEmitter(service, job["job_id"])

            def producer() -> None:  # a training loop's thread
                for step in range(50):
                    emitter.emit_metric("loss", 1.0 / (step + 1), step=step)
                emitter.emit_log("done training")
                emitter.emit_status(JobState.SUCCEEDED)

            await asyncio.to_thread(producer)  # returns while the writer is stalled
            release.set()
            page: list[JobEvent] = []
            for _ in range(100):  # bounded: the waiting status lands within a few drains
                await asyncio.to_thread(service.log.flush, 10)
                page = await asyncio.to_thread(service.log.events, job["job_id"], limit=100)
                if page and page[-1].state is JobState.SUCCEEDED:
                    break
            assert service.log.write_errors > 0  # the metrics that gave way, counted
            assert released and all(released), "the producer waited for the stalled writer"
            return page
        finally:
            await service.close()

    stored = asyncio.run(scenario())
    types = [e.type for e in stored]
    assert types[-2:] == ["system.log", "job.status"]
    assert 0 < types.count("job.metric") < 50
