"""kill -9 under load: everything acknowledged is there after a restart, with its own seq.

The servers are real processes (`synth-ai jobs serve`, `synth-ai serve math --trace`), killed
with SIGKILL while clients are mid-flight, then restarted on the same files.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from synth_ai.tracing_v3 import TraceReader

from .conftest import KEY
from .processes import start_server, stop_server

HEADERS = {"X-API-Key": KEY}
PRODUCERS = 16


def kill_9(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL


async def post_until_killed(
    url: str, job_id: str, process: subprocess.Popen[str], kill_at: int
) -> dict[int, dict[str, Any]]:
    """16 producers post (single events and batches of 5) until the server dies under them;
    answers every acknowledged seq with the event it was acknowledged for."""
    acknowledged: dict[int, dict[str, Any]] = {}
    killed = False

    async def producer(index: int, client: httpx.AsyncClient) -> None:
        nonlocal killed
        for n in range(100_000):
            size = 5 if n % 3 == 0 else 1
            batch = [
                {
                    "type": "rl.step.metric",
                    "message": f"p{index}-{n}-{k}",
                    "data": {"name": f"m{index}", "value": n + k / 10, "step": n},
                }
                for k in range(size)
            ]
            try:
                response = await client.post(f"/api/jobs/{job_id}/events", json={"events": batch})
            except httpx.TransportError:
                return  # the server is gone
            assert response.status_code == 201, response.text
            for seq, event in zip(response.json()["seqs"], batch, strict=True):
                assert seq not in acknowledged, "a seq was acknowledged twice"
                acknowledged[seq] = event
            if len(acknowledged) >= kill_at and not killed:
                killed = True
                os.kill(process.pid, signal.SIGKILL)  # others are mid-request right now

    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=10) as client:
        await asyncio.gather(*(producer(i, client) for i in range(PRODUCERS)))
    assert killed
    return acknowledged


def all_events(url: str, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers=HEADERS, timeout=10) as client:
        while True:
            page = client.get(
                f"/api/jobs/{job_id}/events",
                params={"since_seq": events[-1]["seq"] if events else 0, "limit": 1000},
            ).json()
            events += page["events"]
            if len(page["events"]) < 1000:
                return events


def test_kill_9_jobs_server_keeps_every_acknowledged_event(database_url: str) -> None:
    """On each engine: a SQLite file, and PostgreSQL."""
    db = database_url
    process, url, _ = start_server(["jobs", "serve", "--db", db])
    try:
        job_id = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
        acknowledged = asyncio.run(post_until_killed(url, job_id, process, kill_at=3000))
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
    finally:
        if process.poll() is None:
            kill_9(process)

    process, url, output = start_server(["jobs", "serve", "--db", db])
    try:
        stored = all_events(url, job_id)
        seqs = [event["seq"] for event in stored]
        assert seqs == list(range(1, len(seqs) + 1))  # unique, in order, no hole
        by_seq = {event["seq"]: event for event in stored}
        lost = [seq for seq in acknowledged if seq not in by_seq]
        assert not lost, f"{len(lost)} acknowledged events lost"
        for seq, sent in acknowledged.items():
            assert by_seq[seq]["message"] == sent["message"]
            assert by_seq[seq]["data"] == sent["data"]
        snapshot = httpx.get(f"{url}/api/jobs/{job_id}", headers=HEADERS).json()
        assert snapshot["last_seq"] == seqs[-1]
        # after the crash, new events continue the sequence: no seq is ever given twice
        again = httpx.post(
            f"{url}/api/jobs/{job_id}/events",
            json={"type": "system.log", "message": "after the crash"},
            headers=HEADERS,
        )
        assert again.json()["seqs"] == [seqs[-1] + 1]
    finally:
        stop_server(process, output)


def test_kill_9_traced_task_app_keeps_every_acknowledged_session(
    tmp_path: Path, offline_policy_url: str, database_url: str
) -> None:
    """On each engine: a trace directory (SQLite in it), and a PostgreSQL URL."""
    postgres = database_url.startswith("postgresql://")
    trace_dir = tmp_path / "traces"
    store = database_url if postgres else str(trace_dir / "synth_ai.db")
    args = ["serve", "math", "--trace", database_url if postgres else str(trace_dir)]
    process, url, _ = start_server(args)
    acknowledged: list[str] = []

    async def load() -> None:
        killed = False

        async def one(client: httpx.AsyncClient, seed: int) -> None:
            nonlocal killed
            cid = f"crash-{seed}"
            body = {
                "trace_correlation_id": cid,
                "env": {"seed": seed},
                "policy": {
                    "config": {"model": "offline-policy", "inference_url": offline_policy_url}
                },
            }
            try:
                response = await client.post("/rollout", json=body)
            except httpx.TransportError:
                return
            assert response.status_code == 200, response.text
            assert response.json()["pipeline_metadata"]["trace_stored"] is True
            acknowledged.append(cid)
            if len(acknowledged) >= 150 and not killed:
                killed = True
                os.kill(process.pid, signal.SIGKILL)

        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(
            base_url=url, headers=HEADERS, timeout=30, limits=limits
        ) as client:
            await asyncio.gather(*(one(client, seed) for seed in range(400)))
        assert killed

    try:
        asyncio.run(load())
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
    finally:
        if process.poll() is None:
            kill_9(process)
    reader = TraceReader(store)
    stored = {s["session_id"] for s in reader.list_sessions(limit=10_000)}
    reader.close()
    lost = [cid for cid in acknowledged if cid not in stored]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged sessions lost"
    # the store opens again after the crash and goes on writing
    process, url, output = start_server(args)
    try:
        again = httpx.post(
            f"{url}/rollout",
            json={
                "trace_correlation_id": "after-crash",
                "env": {"seed": 1},
                "policy": {"config": {"inference_url": offline_policy_url}},
            },
            headers=HEADERS,
        )
        assert again.json()["pipeline_metadata"]["trace_stored"] is True
    finally:
        stop_server(process, output)


def test_sigterm_ends_open_streams_at_once(tmp_path: Path) -> None:
    """A server asked to stop does not wait for its streams' clients to leave: the streams end,
    the process exits within seconds, and the client can resume elsewhere."""
    process, url, _ = start_server(["jobs", "serve", "--db", str(tmp_path / "jobs.db")])
    try:
        job_id = httpx.post(f"{url}/api/jobs", json={}, headers=HEADERS).json()["job_id"]
        httpx.post(f"{url}/api/jobs/{job_id}/events", json={"type": "x.log"}, headers=HEADERS)
        with httpx.stream(
            "GET", f"{url}/api/jobs/{job_id}/stream", headers=HEADERS, timeout=30
        ) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("id:")) == "id: 1"
            process.send_signal(signal.SIGTERM)
            rest = list(lines)  # ends when the server closes the stream, not after 30 s
            assert not any(line.startswith("id:") for line in rest)
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises it
    finally:
        if process.poll() is None:
            kill_9(process)
