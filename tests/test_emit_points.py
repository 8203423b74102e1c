"""Emit points of training loops (DESIGN.md 5), end to end against a real jobs server.

The example loops (`examples/rl_loop`, `examples/ft_loop`) run in-process (`JobEmitter` on the
server's own service) and in another process (`python -m examples.<loop> --jobs-server URL`,
through `RemoteEmitter`); an SSE subscriber must see their emit points in order. Then metric
rates under load, and the remote emitter's backpressure, retries and refusals.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from examples.ft_loop import FTConfig, run_ft
from examples.rl_loop import RLConfig, run_rl
from synth_ai.jobs import (
    Emitter,
    JobEmitter,
    JobEvent,
    JobsService,
    RemoteEmitter,
    RemoteEmitterError,
    StreamSettings,
    create_jobs_app,
    finite_json,
)
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY

HEADERS = {"X-API-Key": KEY}
ROOT = Path(__file__).resolve().parents[1]
# no coalescing: a stream then carries exactly the log, in order
EVERY_EVENT = StreamSettings(max_metric_hz=0, end_grace_s=0.05)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Starlette]]:
    app = create_jobs_app(tmp_path_factory.mktemp("jobs") / "jobs.db", settings=EVERY_EVENT)
    with serve_in_background(app) as url:
        yield url, app


def new_job(url: str) -> str:
    response = httpx.post(f"{url}/api/jobs", json={"kind": "custom"}, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def logged(url: str, job_id: str) -> list[JobEvent]:
    """Every stored event, through the polling API."""
    events: list[JobEvent] = []
    while True:
        page = httpx.get(
            f"{url}/api/jobs/{job_id}/events",
            params={"since_seq": events[-1].seq if events else 0, "limit": 1000},
            headers=HEADERS,
        ).json()
        if not page["events"]:
            return events
        events += [JobEvent.model_validate(item) for item in page["events"]]


async def follow(
    url: str, job_id: str, received: list[tuple[float, JobEvent]], first: threading.Event
) -> None:
    """Stream the job to its end, stamping arrivals; `first` is set at the first event (the
    subscription is live by then: a stream subscribes before it replays)."""
    async with TaskAppClient(url, KEY) as client:
        async for event in client.stream_job(job_id):
            received.append((time.monotonic(), event))
            first.set()


async def subscribed(url: str, job_id: str) -> None:
    """Poll the snapshot (no sleeps) until the job has a live stream."""
    async with TaskAppClient(url, KEY) as client:
        deadline = time.monotonic() + 30  # polled, no sleeps; a deadline, not a count
        while time.monotonic() < deadline:
            if (await client.status(job_id))["streams"]:
                return
    raise AssertionError("the stream never subscribed")


class Recorder(JobEmitter):
    """What a loop emits, recorded through `JobEmitter`'s own helpers (no service)."""

    def __init__(self) -> None:
        super().__init__(None, "recorded")  # type: ignore[arg-type]
        self.events: list[dict[str, Any]] = []

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(
            {"type": type, "level": level, "message": message, "data": finite_json(data or {})}
        )

    def upload_local(self, path: Path, *, kind: str, step: int | None) -> None:
        """A checkpoint as the jobs server announces it once uploaded."""
        content = path.read_bytes()
        stored = {
            "name": path.name,
            "url": f"/api/jobs/recorded/artifacts/{path.name}",
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        self.emit(f"artifact.{kind}", data={"kind": kind, "step": step, **stored})


@dataclass(frozen=True)
class Loop:
    name: str
    prefix: str
    train_names: tuple[str, ...]
    eval_names: tuple[str, ...]
    steps: int
    status_every: int
    evals: int
    run: Callable[[Emitter, Path], Any]
    cli: tuple[str, ...]


LOOPS = {
    "rl": Loop(
        "rl_loop",
        "rl",
        ("avg_reward", "return", "success_rate"),
        ("avg_reward", "return", "success_rate"),
        steps=60,
        status_every=10,
        evals=3,
        run=lambda emitter, where: run_rl(emitter, RLConfig(steps=60, eval_every=20), where),
        cli=("--steps", "60", "--eval-every", "20"),
    ),
    "ft": Loop(
        "ft_loop",
        "ft",
        ("loss", "lr"),
        ("val_loss", "accuracy"),
        steps=32,
        status_every=8,
        evals=4,
        run=lambda emitter, where: run_ft(emitter, FTConfig(epochs=2, eval_every=8), where),
        cli=("--epochs", "2", "--eval-every", "8"),
    ),
}


def check_emit_points(events: list[JobEvent], loop: Loop) -> None:
    """The design's emit points, in order: running first; train metrics and periodic statuses
    in the train phase; per evaluation a phase change to eval, the eval metrics, a checkpoint
    artifact and its log line, and back to train; `succeeded` last."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "gaps or reordering"
    first, last = events[0], events[-1]
    assert first.sse_name == last.sse_name == "status", "a status comes first and last"
    assert (first.type, first.data["state"], first.data["phase"], first.data["step"]) == (
        "job.status",
        "running",
        "train",
        0,
    )
    assert (last.type, last.data["state"], last.data["phase"], last.data["step"]) == (
        "job.status",
        "succeeded",
        "done",
        loop.steps,
    )
    assert not any(e.state is not None and e.state.terminal for e in events[:-1])
    # cut the run into phases at each status that changes the phase
    phases: list[tuple[str, list[JobEvent]]] = []
    for event in events:
        if event.sse_name == "status" and (not phases or phases[-1][0] != event.data["phase"]):
            phases.append((event.data["phase"], []))
        phases[-1][1].append(event)
    assert [name for name, _ in phases] == ["train", "eval"] * loop.evals + ["done"]
    train_steps: Counter[int] = Counter()
    status_steps: set[int] = set()
    checkpoints: list[int] = []
    step = 0
    for phase, members in phases:
        for i, event in enumerate(members):
            assert event.data.get("step", step) >= step, "steps went backwards"
            step = event.data.get("step", step)
            if event.sse_name == "metric":
                assert event.data["split"] == phase, f"a {event.data['split']} metric in {phase}"
                assert event.type == f"{loop.prefix}.{phase}.metric"
                assert isinstance(event.data["value"], float) and event.data["epoch"] >= 0
            if phase == "train" and event.sse_name == "metric":
                assert event.data["name"] in loop.train_names
                train_steps[event.data["step"]] += 1
            elif phase == "train" and event.sse_name == "status" and event.data["step"]:
                assert event.data["state"] == "running"
                status_steps.add(event.data["step"])
            elif event.sse_name == "artifact":
                assert phase == "eval"
                assert (event.type, event.data["kind"]) == ("artifact.checkpoint", "checkpoint")
                assert event.data["step"] == members[0].data["step"]
                # the loop's local checkpoint file, uploaded: its link is the job's own
                name = event.data["name"]
                assert event.data["url"] == f"/api/jobs/{event.job_id}/artifacts/{name}"
                assert event.data["size"] > 0 and len(event.data["sha256"]) == 64
                log = members[i + 1] if i + 1 < len(members) else None
                assert log is not None and log.type == "system.log", "no log line after it"
                assert name in (log.message or "")
                checkpoints.append(event.data["step"])
        if phase == "eval":
            start = members[0]
            assert start.data["state"] == "running" and start.data["step"] > 0
            metrics = [e.data["name"] for e in members if e.sse_name == "metric"]
            assert sorted(metrics) == sorted(loop.eval_names)
            assert [e.sse_name for e in members[-2:]] == ["artifact", "log"]
    assert train_steps == dict.fromkeys(range(1, loop.steps + 1), len(loop.train_names))
    assert set(range(loop.status_every, loop.steps + 1, loop.status_every)) <= status_steps
    assert len(checkpoints) == loop.evals and checkpoints[-1] == loop.steps


def shape(event: dict[str, Any], checkpoint_dir: Path) -> str:
    """An event as the loop made it, its checkpoint directory taken out (it names the job)."""
    text = json.dumps({k: event[k] for k in ("type", "level", "message", "data")})
    text = re.sub(r"/api/jobs/[^/]+/artifacts/", "<artifacts>/", text)
    # an uploaded checkpoint's size and hash: it holds its run's config (the delay differs)
    text = re.sub(r'"size": \d+, "sha256": "[0-9a-f]{64}"', '"size": _, "sha256": _', text)
    return text.replace(checkpoint_dir.resolve().as_uri(), "<checkpoints>")


def test_both_emitters_are_emitters(jobs: tuple[str, Starlette]) -> None:
    url, app = jobs
    remote = RemoteEmitter(url, new_job(url), KEY)
    try:
        assert isinstance(remote, Emitter)
        assert isinstance(JobEmitter(app.state.jobs, "job_x"), Emitter)
    finally:
        remote.close()


@pytest.mark.parametrize("mode", ["in_process", "subprocess"])
@pytest.mark.parametrize("which", ["rl", "ft"])
def test_a_stream_shows_every_emit_point_of_the_loop(
    jobs: tuple[str, Starlette], tmp_path: Path, which: str, mode: str
) -> None:
    url, app = jobs
    loop = LOOPS[which]
    reference = Recorder()
    loop.run(reference, tmp_path / "reference")
    received: list[tuple[float, JobEvent]] = []

    async def in_process() -> tuple[str, Path]:
        """The loop in a worker thread, emitting through the server's own service."""
        service: JobsService = app.state.jobs
        job_id = new_job(url)
        consumer = asyncio.create_task(follow(url, job_id, received, threading.Event()))
        await subscribed(url, job_id)  # the loop starts with the stream already live
        await asyncio.to_thread(loop.run, JobEmitter(service, job_id), tmp_path / "ckpt")
        await consumer
        return job_id, tmp_path / "ckpt"

    def in_a_subprocess() -> tuple[str, Path]:
        """`python -m examples.<loop> --jobs-server URL`: creates the job, prints its id."""
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"examples.{loop.name}",
                "--jobs-server",
                url,
                "--checkpoint-dir",
                str(tmp_path / "ckpt"),
                "--step-delay",
                "0.002",
                *loop.cli,
            ],
            cwd=ROOT,
            env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        try:
            job_id = process.stdout.readline().strip()
            assert job_id.startswith("job_"), process.communicate(timeout=60)
            asyncio.run(follow(url, job_id, received, threading.Event()))  # while the loop runs
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        assert "succeeded:" in out and "dropped 0" in out
        return job_id, tmp_path / "ckpt" / job_id

    job_id, checkpoint_dir = (
        asyncio.run(in_process()) if mode == "in_process" else in_a_subprocess()
    )
    log = logged(url, job_id)
    # the stream is the log, each event as the wire carries it, nothing more, nothing less
    assert [event.model_dump() for _, event in received] == [
        JobEvent.from_wire(e.wire_payload()).model_dump() for e in log
    ]
    check_emit_points(log, loop)
    # and the log is what the loop emitted, once each, in order (the same seeded run)
    assert [shape(e.model_dump(), checkpoint_dir) for e in log] == [
        shape(e, tmp_path / "reference") for e in reference.events
    ]


# --- metric rates under load ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["in_process", "remote"])
def test_a_100hz_producer_reaches_a_stream_at_most_max_metric_hz_per_name_and_split(
    tmp_path: Path, mode: str
) -> None:
    hz = 4.0
    settings_ = StreamSettings(max_metric_hz=hz, end_grace_s=0.3)
    app = create_jobs_app(tmp_path / "j.db", settings=settings_)
    names, splits, ticks = ("loss", "reward", "kl"), ("train", "eval"), 200
    received: list[tuple[float, JobEvent]] = []
    produced_s: list[float] = []
    with serve_in_background(app) as url:
        job_id = new_job(url)
        live = threading.Event()

        def produce() -> None:
            emitter: JobEmitter | RemoteEmitter = (
                JobEmitter(app.state.jobs, job_id)
                if mode == "in_process"
                else RemoteEmitter(url, job_id, KEY)
            )
            try:
                emitter.emit_status("running", step=0, phase="train")
                assert live.wait(30), "the subscriber never saw the first status"
                started = next_tick = time.monotonic()
                for step in range(ticks):  # 100 Hz for two seconds, six series
                    for name in names:
                        for split in splits:
                            emitter.emit_metric(
                                name, float(step), step=step, split=split, type=f"rl.{split}.metric"
                            )
                    next_tick += 0.01  # pacing the producer, not waiting for a result
                    time.sleep(max(0.0, next_tick - time.monotonic()))
                emitter.emit_status("succeeded", step=ticks - 1, phase="done")
                produced_s.append(time.monotonic() - started)
            finally:
                if isinstance(emitter, RemoteEmitter):
                    emitter.close()

        async def scenario() -> None:
            consumer = asyncio.create_task(follow(url, job_id, received, live))
            await asyncio.to_thread(produce)
            await consumer

        asyncio.run(scenario())
        log = logged(url, job_id)
    assert [e.seq for e in log] == list(range(1, ticks * 6 + 3))  # every one stored, no gaps
    assert received[0][1].data["state"] == "running"
    assert received[-1][1].data["state"] == "succeeded"  # nothing after the terminal status
    series: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _, event in received:
        if event.sse_name == "metric":
            series[event.data["name"], event.data["split"]].append(event.data["value"])
    assert set(series) == {(n, s) for n in names for s in splits}
    for key, values in series.items():
        assert values == sorted(values), (key, values)  # in order
        assert values[-1] == ticks - 1, f"the latest {key} was not delivered"
        # Coalesced: a series is sent at most once per 1/hz seconds while values come, plus
        # its first value and the flush before the terminal status, far below the 200 values
        # produced. Bounded by how long the producer ran (a pause anywhere only lengthens it,
        # or holds values that are then coalesced); the exact rate and timing are held on a
        # virtual clock in test_metric_pacing.py, not by arrival times here.
        assert len(values) <= hz * (produced_s[0] + 1) + 2, (key, len(values))


# --- the remote emitter's backpressure, retries and refusals ----------------------------------


class GatedTransport(httpx.BaseTransport):
    """Real HTTP, but posts of events wait until the gate opens (a stalled server)."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/events"):
            self.waiting.set()
            self.gate.wait(60)
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


def test_the_producer_never_blocks_and_what_matters_arrives_while_the_server_stalls(
    jobs: tuple[str, Starlette],
) -> None:
    url, _ = jobs
    job_id = new_job(url)
    transport = GatedTransport()
    emitter = RemoteEmitter(url, job_id, KEY, max_queue=50, transport=transport)
    slowest = 0.0

    def timed(call: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        nonlocal slowest
        started = time.perf_counter()
        call(*args, **kwargs)
        slowest = max(slowest, time.perf_counter() - started)

    timed(emitter.emit_status, "running", step=0, phase="train")
    assert transport.waiting.wait(10)  # the first post is stuck at the server
    keys = [(name, split) for name in ("loss", "reward", "kl") for split in ("train", "eval")]
    for step in range(1, 1001):
        for name, split in keys:
            timed(emitter.emit_metric, name, float(step), step=step, split=split)
        if step % 100 == 0:
            timed(emitter.emit_log, f"step {step}")
        if step % 250 == 0:
            timed(emitter.emit_artifact, "checkpoint", f"s3://bucket/c/{step}", step=step)
    timed(emitter.emit_metric, "rare", 1.0, step=1000)  # the queue is full and it has no twin
    timed(emitter.emit_status, "succeeded", step=1000, phase="done")
    stats = emitter.stats
    # An emit that waited for the stalled server would wait for the gate, which opens only
    # after these returned (60 s): the bound tells waiting apart from scheduling noise.
    assert slowest < 10, f"an emit took {slowest:.1f} s while the server stalled"
    assert stats.dropped_metrics == 1 and stats.coalesced > 5000 and stats.dropped_logs == 0
    assert stats.queued <= 50 + 10 + 4 + 1  # metrics bounded; logs, artifacts, status kept
    transport.gate.set()
    emitter.close()
    log = logged(url, job_id)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert [e.ts for e in log] == sorted(e.ts for e in log)  # in the order they were emitted
    assert [e.message for e in log if e.sse_name == "log"] == [
        f"step {s}" for s in range(100, 1001, 100)
    ]
    assert [e.data["step"] for e in log if e.sse_name == "artifact"] == [250, 500, 750, 1000]
    assert log[0].data["state"] == "running" and log[-1].data["state"] == "succeeded"
    assert log[-1].data["dropped_events"] is True
    assert log[-1].data["emitter_dropped"] == {"metric": 1, "log": 0}
    for name, split in keys:
        steps = [
            e.data["step"]
            for e in log
            if (e.data.get("name"), e.data.get("split")) == (name, split)
        ]
        assert steps == sorted(steps) and steps[-1] == 1000, (name, split)


class FlakyTransport(httpx.BaseTransport):
    """Real HTTP with failures injected into posts of events, one planned outcome per post:
    `ok`; `503`/`429` answered before the server sees it; `refused` (connect error, never
    sent); `lost` (stored by the server, the answer lost); `cut` (lost on the way, not stored)."""

    def __init__(self, plan: list[str]) -> None:
        self.plan = list(plan)
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/events") or not self.plan:
            return self.real.handle_request(request)
        outcome = self.plan.pop(0)
        if outcome in ("503", "429"):
            body = {"detail": {"error": {"code": "busy", "message": "try later"}}}
            return httpx.Response(int(outcome), json=body, headers={"Retry-After": "0"})
        if outcome == "refused":
            raise httpx.ConnectError("connection refused by the test", request=request)
        if outcome == "cut":
            raise httpx.ReadError("connection cut by the test", request=request)
        response = self.real.handle_request(request)
        if outcome == "lost":
            response.read()
            raise httpx.ReadError("answer lost by the test", request=request)
        return response

    def close(self) -> None:
        self.real.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(st.sampled_from(["ok", "503", "429", "refused", "lost", "cut"]), max_size=12),
    count=st.integers(1, 40),
    batch=st.integers(1, 8),
)
def test_transient_failures_are_retried_in_order_and_nothing_is_stored_twice(
    jobs: tuple[str, Starlette], plan: list[str], count: int, batch: int
) -> None:
    url, _ = jobs
    job_id = new_job(url)
    transport = FlakyTransport(plan)
    with RemoteEmitter(
        url, job_id, KEY, max_batch=batch, backoff_s=0.001, transport=transport
    ) as emitter:
        for i in range(count):
            emitter.emit_log(f"line {i}")
            emitter.emit_metric("x", float(i), step=i)
        emitter.emit_status("succeeded")
    log = logged(url, job_id)
    expected = [m for i in range(count) for m in (f"line {i}", i)] + ["succeeded"]
    assert [
        e.message if e.sse_name == "log" else e.data.get("step", e.data.get("state")) for e in log
    ] == expected
    assert emitter.stats.sent == 2 * count + 1


def test_a_refusal_stops_the_emitter_with_a_clear_error(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    job_id = new_job(url)
    wrong_key = RemoteEmitter(url, job_id, "not-the-key")
    wrong_key.emit_log("hello")
    with pytest.raises(RemoteEmitterError) as refused:
        wrong_key.flush()
    assert refused.value.status == 401
    wrong_key.emit_log("after the refusal")  # never raises in the loop, never blocks
    assert wrong_key.stats.discarded == 2
    with pytest.raises(RemoteEmitterError):
        wrong_key.close()

    unknown = RemoteEmitter(url, "job_nope", KEY)
    unknown.emit_status("running")
    with pytest.raises(RemoteEmitterError) as missing:
        unknown.close()
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")

    # a status after the end is refused, but the events before it are stored
    finished = RemoteEmitter(url, job_id, KEY)
    finished.emit_log("last words")
    finished.emit_status("succeeded")
    finished.emit_status("running")
    with pytest.raises(RemoteEmitterError) as late:
        finished.close()
    assert (late.value.status, late.value.code) == (409, "job_finished")
    assert [e.sse_name for e in logged(url, job_id)] == ["log", "status"]


def test_undelivered_events_are_reported_at_close(jobs: tuple[str, Starlette]) -> None:
    url, _ = jobs
    emitter = RemoteEmitter(
        url, new_job(url), KEY, backoff_s=0.01, transport=FlakyTransport(["503"] * 10_000)
    )
    emitter.emit_status("succeeded")
    with pytest.raises(RemoteEmitterError) as undelivered:
        emitter.close(timeout_s=0.3)
    assert undelivered.value.code == "undelivered" and emitter.stats.retries > 0
