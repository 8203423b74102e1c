"""/rollout throughput with a trivial executor, against bare handlers and published peers.

Servers, each alone on one core (the load generators on another, when there are two):
- this framework;
- a bare Starlette handler answering the same bytes (parses the JSON, writes a fixed answer);
- a bare Starlette handler that validates the request, applies the cid rule and writes the
  response with this project's contract models, answering the framework's bytes (checked
  before anything is measured): the least a correct task app does (DESIGN.md 8);
- the same two as plain ASGI callables, without Starlette: the server's own floor, and the
  least a correct task app costs on it with no framework at all;
- the same app on the published `synth-ai==0.2.24`;
- OpenEnv's published server (`openenv-core`), a trivial environment on `POST /step`.
Every server runs under the same uvicorn, once on its pure-Python parts (asyncio, h11) and once
on uvloop and httptools (the `standard` extra), each load measured by the in-repo load generator
and cross-checked by wrk. The per-request work of the in-repo apps is also timed in-process (no
server, no sockets): the gap between them is what the framework costs. Where valgrind is
installed, each server's instructions per request are also counted under callgrind: a measure
this shared machine's noise does not move.

Goals (DESIGN.md 8): at least 0.90x the validating bare handler, 3x synth-ai 0.2.24 and 2x
openenv-core. The peers are installed by this script into virtualenvs under bench/.cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    FAST,
    LOAD_CORE,
    PURE,
    ROOT,
    SERVER_CORE,
    LoadResult,
    Served,
    ServerSetup,
    WrkResult,
    callgrind_available,
    cpu_seconds,
    foreign_server,
    forked_server,
    in_process_us,
    instructions_per_request,
    load,
    median_run,
    pinning,
    record,
    wrk_load,
)
from synth_ai.task import (
    RolloutMetrics,
    RolloutRequest,
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
)

KEY = "bench-key"
SERVER_ENV = {"ENVIRONMENT_API_KEY": KEY}
PUBLISHED = "synth-ai==0.2.24"
OPENENV = "openenv-core==0.3.0"
CACHE = Path(__file__).with_name(".cache")
PUBLISHED_VENV = CACHE / "published"
OPENENV_VENV = CACHE / "openenv"
FAST_PARTS = CACHE / "standard"
"""uvloop and httptools, installed with `pip --target` for the peers' interpreters: their
virtualenvs stay as published (import_cost.py measures the published one's footprint)."""
ROUNDS = 9
"""Many short rounds rather than a few long ones: on a shared machine the speed drifts within
seconds, and each goal is judged on the median of per-round ratios, so drift weighs on both."""
CONCURRENCY = 32
WARMUP_S = 0.5
DURATION_S = 2.0
WORK_ROUNDS = 5
THIS, BARE, VALIDATING, RAW, RAW_VALIDATING, OPENENV_NAME = (
    "synth-ai (this)",
    "bare Starlette",
    "bare Starlette, validating",
    "plain ASGI",
    "plain ASGI, validating",
    "openenv-core 0.3.0",
)
COUNTED_REQUESTS = 400
"""Requests per server under callgrind (after 200 of warm-up); the count per request repeats
to a fraction of a percent, so a few hundred are plenty."""
GOALS = {VALIDATING: 0.90, PUBLISHED: 3.0, OPENENV_NAME: 2.0}


# --- the apps -----------------------------------------------------------------------------------


def trivial_response(run_id: str | None, seed: int | None) -> Any:
    """The trivial executor's answer, built with the contract models (as 0.2.24's app does)."""
    return RolloutResponse(
        run_id=run_id,
        trajectories=[
            RolloutTrajectory(
                env_id="trivial",
                policy_id="p",
                length=1,
                steps=[RolloutStep(obs={"seed": seed}, tool_calls=[], reward=1.0, done=True)],
            )
        ],
        metrics=RolloutMetrics(
            episode_returns=[1.0], mean_return=1.0, num_steps=1, outcome_score=1.0
        ),
    )


def ours() -> Any:
    from synth_ai.task import TaskAppConfig, TaskDescriptor, TaskInfo, create_task_app

    async def rollout(request: Any, context: Any) -> Any:
        return trivial_response(request.run_id, request.env.seed)

    base = TaskInfo(task=TaskDescriptor(id="trivial", name="Trivial"), environment="trivial")
    return create_task_app(
        TaskAppConfig(
            app_id="trivial",
            name="Trivial",
            description="bench",
            base_task_info=base,
            rollout=rollout,
        )
    )


def routed() -> Any:
    """`ours` with no direct route: every request through Starlette's error layer and router
    (bench/direct_dispatch.py weighs the edge's fast path against it)."""
    app = ours()
    app.direct = {}
    return app


def armed_at_once() -> Any:
    """`ours` arming each rollout's deadline and disconnect listener as it starts: the plain
    path (bench/late_arming.py weighs the late arming against it)."""
    from synth_ai.task.arming import Arming

    app = ours()
    app.state.task_app.runner.arming = Arming(0)
    return app


def answered(app: Any, payload: dict[str, Any], headers: dict[str, str]) -> bytes:
    """The bytes `app` answers to POST /rollout of `payload` (called in-process)."""
    import httpx

    async def capture() -> bytes:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            response = await client.post("/rollout", json=payload, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"answered {response.status_code}: {response.text[:200]}")
            return response.content

    return asyncio.run(capture())


def our_answer() -> Any:
    """The JSON our app answers to `body(0)`, captured once."""
    return json.loads(answered(ours(), body(0), {"X-API-Key": KEY}))


def check_same_answers() -> None:
    """Every in-repo server answers the framework's bytes (DESIGN 8), so the ratios compare
    the same work: the validating ones to the load's bodies and to ones whose cid comes from
    the policy config or the inference URL; the fixed ones to the body they answer."""
    with_url = dict(body(3), policy={"config": {"inference_url": "http://policy.test?cid=c-3"}})
    from_config = dict(body(4), policy={"config": {"trace_correlation_id": "c-4"}})
    ours_app = ours()
    references = {factory.__name__: factory() for factory in (validating, plain_validating)}
    for payload in (body(0), body(1), with_url, from_config):
        expected = answered(ours_app, payload, {"X-API-Key": KEY})
        for name, app in references.items():
            if answered(app, payload, {}) != expected:
                raise RuntimeError(f"{name} does not answer what this framework does")
    document = json.loads(answered(ours_app, body(0), {"X-API-Key": KEY}))
    for factory in (bare, plain):  # our JSON written again by json.dumps: the same document
        if json.loads(answered(factory(), body(0), {})) != document:
            raise RuntimeError(f"{factory.__name__} does not answer what this framework does")


def bare() -> Any:
    """A bare Starlette handler answering the JSON our app answers."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    answer = our_answer()

    async def rollout(request: Request) -> JSONResponse:
        await request.json()
        return JSONResponse(answer)

    return Starlette(routes=[Route("/rollout", rollout, methods=["POST"])])


def correlated_response(request: RolloutRequest) -> Any:
    """The trivial answer with the cid rule applied, as the contract requires of any task app
    (DESIGN 3.4), by the contract's own helpers: the id taken from the policy config, the
    inference URL or the request, and stamped at the top level, on each trajectory and in
    `pipeline_metadata`. The framework answers these bytes (`check_same_answers`)."""
    from synth_ai.task.correlation import (
        apply_correlation,
        extract_trace_correlation_id,
        normalize_inference_url,
        policy_inference_url,
        stamp_inference_url,
    )

    config = request.policy.config
    raw_url = policy_inference_url(config)
    url = normalize_inference_url(raw_url) if raw_url else None
    cid = extract_trace_correlation_id(config, url or "", request.trace_correlation_id)
    assert cid is not None  # the request model fills it in from run_id
    answer = trivial_response(request.run_id, request.env.seed)
    stamped = stamp_inference_url(url, cid) if url else None
    return apply_correlation(answer, request.run_id, cid, stamped)


def validating() -> Any:
    """A bare Starlette handler doing the least a correct task app does (DESIGN 8): it parses
    the request and writes the response with the contract models, the cid rule applied; no
    auth, limits, deadline or error envelope."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def rollout(request: Request) -> Response:
        parsed = RolloutRequest.model_validate_json(await request.body())
        answer = correlated_response(parsed)
        return Response(answer.model_dump_json(), media_type="application/json")

    return Starlette(routes=[Route("/rollout", rollout, methods=["POST"])])


async def _read_body(receive: Any) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _answer(send: Any, payload: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def plain() -> Any:
    """A plain ASGI callable that reads the body and answers our app's bytes: no Starlette,
    no parsing; what uvicorn itself costs per request, the floor of every app on it."""
    payload = json.dumps(our_answer()).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _read_body(receive)
            await _answer(send, payload)

    return app


def plain_validating() -> Any:
    """A plain ASGI callable doing what the validating handler does, without Starlette: the
    least a correct task app costs on this server, with no framework at all."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            parsed = RolloutRequest.model_validate_json(await _read_body(receive))
            await _answer(send, correlated_response(parsed).model_dump_json().encode())

    return app


def body(n: int) -> dict[str, Any]:
    return {
        "run_id": f"r{n}",
        "env": {"seed": n % 1000, "config": {}},
        "policy": {"config": {}},
        "ops": [],
        "mode": "eval",  # the published release requires it
    }


def step_body(n: int) -> dict[str, Any]:
    return {"action": {"seed": n % 1000}}


# --- peers in their own virtualenvs -----------------------------------------------------------


def _ensure_venv(venv: Path, requirement: str) -> Path | None:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing {requirement} into {venv} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement])
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            return None
    return python


def ensure_published() -> Path | None:
    """The python of a virtualenv with the published synth-ai 0.2.24, made once."""
    return _ensure_venv(PUBLISHED_VENV, PUBLISHED)


def ensure_openenv() -> Path | None:
    """The python of a virtualenv with the published openenv-core, made once."""
    return _ensure_venv(OPENENV_VENV, OPENENV)


def fast_parts() -> list[str] | None:
    """The versions of uvloop and httptools this venv has (the `standard` extra), also put
    where the peers' interpreters find them; None when this venv lacks them."""
    try:
        pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("uvloop", "httptools")]
    except importlib.metadata.PackageNotFoundError:
        return None
    stamp = FAST_PARTS / ".installed"
    if not stamp.exists() or stamp.read_text() != " ".join(pins):
        shutil.rmtree(FAST_PARTS, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(FAST_PARTS), *pins]
        )
        if done.returncode != 0:
            return None
        stamp.write_text(" ".join(pins))
    return pins


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A server as a command: serve_app.py run by `python` on `spec`, with `env` added."""

    python: Path
    spec: str
    env: dict[str, str]


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    body: Callable[[int], dict[str, Any]]
    auth: bool
    serve: Callable[[ServerSetup], contextlib.AbstractContextManager[Served]]
    command: Callable[[ServerSetup], Command]
    """The same server started as a command (for callgrind, which cannot follow a fork)."""


@dataclass
class Round:
    """One target on one server setup: each load, and the server's CPU microseconds per
    request under it (robust where other work shares the machine: it counts only the time
    the server ran)."""

    load: LoadResult
    load_cpu_us: float | None
    wrk: WrkResult | None
    wrk_cpu_us: float | None


def _cpu_us(pid: int, before: float | None, requests: int) -> float | None:
    after = cpu_seconds(pid)
    if before is None or after is None or not requests:
        return None
    return (after - before) / requests * 1e6


def measure(target: Target, setup: ServerSetup, use_wrk: bool) -> Round:
    headers = {"X-API-Key": KEY} if target.auth else {}
    options: dict[str, Any] = {
        "headers": headers,
        "concurrency": CONCURRENCY,
        "warmup_s": WARMUP_S,
        "duration_s": DURATION_S,
    }
    with target.serve(setup) as served:
        before = cpu_seconds(served.pid)
        result = load(served.url, target.path, method="POST", body=target.body, **options)
        load_cpu = _cpu_us(served.pid, before, sum(result.statuses.values()))
        cross = wrk_cpu = None
        if use_wrk:
            before = cpu_seconds(served.pid)
            cross = wrk_load(served.url, target.path, body=target.body(0), **options)
            wrk_cpu = _cpu_us(served.pid, before, cross.requests)
    return Round(result, load_cpu, cross, wrk_cpu)


@dataclass
class Summary:
    """The medians of a target's rounds on one setup."""

    load: LoadResult
    wrk: WrkResult | None
    cpu_us: float | None
    wrk_cpu_us: float | None
    rounds: list[Round]

    @classmethod
    def of(cls, rounds: list[Round]) -> Summary:
        wrks = sorted((r.wrk for r in rounds if r.wrk is not None), key=lambda w: w.rps)
        return cls(
            median_run([r.load for r in rounds]),
            wrks[len(wrks) // 2] if wrks else None,
            _median([r.load_cpu_us for r in rounds]),
            _median([r.wrk_cpu_us for r in rounds]),
            rounds,
        )

    def round_ratios(self, other: Summary) -> list[float]:
        """This target's throughput over another's, round by round (measured moments apart)."""
        return [
            mine.load.rps / theirs.load.rps
            for mine, theirs in zip(self.rounds, other.rounds, strict=True)
            if theirs.load.rps
        ]


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ratio_cell(ours: float | None, theirs: float | None, goal: float | None) -> str:
    if not ours or not theirs:
        return "n/a"
    ratio = ours / theirs
    if goal is None:
        return f"{ratio:.2f}x"
    return f"**{ratio:.2f}x** ({'meets' if ratio >= goal else 'misses'})"


def in_repo(
    name: str, factory: Callable[[], Any], auth: bool = False, checkout: Path = ROOT
) -> Target:
    """A server whose app is `factory` in this module, served from `checkout` (put first on
    PYTHONPATH when started as a command, e.g. an older copy of the code)."""

    def command(setup: ServerSetup) -> Command:
        spec = f"bench.framework_overhead:{factory.__name__}"
        extra = {**SERVER_ENV, **setup.env, "PYTHONPATH": str(checkout)}
        return Command(Path(sys.executable), spec, extra)

    def serve(setup: ServerSetup) -> Any:
        return forked_server(factory, {**SERVER_ENV, **setup.env})

    return Target(name, "/rollout", body, auth, serve, command)


def foreign(name: str, python: Path, spec: str, path: str, auth: bool = False) -> Target:
    """A peer's server, run by the python of its own virtualenv."""

    def command(setup: ServerSetup) -> Command:
        # the caller's PYTHONPATH never reaches a peer: it would serve this checkout's code
        extra = {**SERVER_ENV, **setup.env, "PYTHONPATH": str(FAST_PARTS) if setup is FAST else ""}
        return Command(python, spec, extra)

    def serve(setup: ServerSetup) -> Any:
        started = command(setup)
        return foreign_server(started.python, started.spec, started.env)

    return Target(name, path, step_body if path == "/step" else body, auth, serve, command)


def all_targets(published: Path | None, openenv: Path | None) -> list[Target]:
    """Every server this bench compares; the peers only where their virtualenvs exist."""
    targets = [
        in_repo(THIS, ours, auth=True),
        in_repo(BARE, bare),
        in_repo(VALIDATING, validating),
        in_repo(RAW, plain),
        in_repo(RAW_VALIDATING, plain_validating),
    ]
    if published is not None:
        targets.append(foreign(PUBLISHED, published, "published_app:app", "/rollout", auth=True))
    if openenv is not None:
        targets.append(foreign(OPENENV_NAME, openenv, "openenv_app:app", "/step"))
    return targets


def main() -> None:
    if pinning():
        os.sched_setaffinity(0, {LOAD_CORE})  # this process drives the load (and wrk inherits it)
    published, openenv = ensure_published(), ensure_openenv()
    fast = fast_parts()
    use_wrk = shutil.which("wrk") is not None
    os.environ.update(SERVER_ENV)  # the in-process measurement checks keys in this process
    check_same_answers()
    targets = all_targets(published, openenv)
    setups = [PURE, FAST] if fast is not None else [PURE]

    apps = [(THIS, ours(), {"X-API-Key": KEY}), (BARE, bare(), {}), (VALIDATING, validating(), {})]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in apps}
    for _ in range(WORK_ROUNDS):  # alternating, as the load rounds are
        for name, app, headers in apps:
            samples[name].append(in_process_us(app, "/rollout", body(0), headers))
    work = {name: statistics.median(values) for name, values in samples.items()}
    rounds: dict[tuple[str, ServerSetup], list[Round]] = {
        (t.name, s): [] for t in targets for s in setups
    }
    for _ in range(ROUNDS):
        for setup in setups:
            for target in targets:
                rounds[target.name, setup].append(measure(target, setup, use_wrk))
    for key, measured in rounds.items():
        for one in measured:
            assert one.load.errors == 0, f"{key}: {one.load.errors} errors"
            assert one.wrk is None or one.wrk.errors == 0, f"{key} (wrk): {one.wrk.errors} errors"
    counted = count_instructions(targets, setups) if callgrind_available() else None
    health_setup = setups[-1]
    with forked_server(ours, {**SERVER_ENV, **health_setup.env}) as served:
        health = load(
            served.url,
            "/health",
            headers={"X-API-Key": KEY},
            concurrency=64,
            warmup_s=1.0,
            duration_s=4.0,
        )
    summaries = {key: Summary.of(measured) for key, measured in rounds.items()}
    record(
        "framework overhead",
        report(targets, setups, summaries, work, (health_setup, health), fast, use_wrk, counted),
    )
    for setup in setups:
        print(
            f"{setup.label}: "
            + ", ".join(f"{t.name}: {summaries[t.name, setup].load.rps:.0f}/s" for t in targets)
        )


def count_instructions(
    targets: list[Target], setups: list[ServerSetup]
) -> dict[tuple[str, ServerSetup], float]:
    """Each server's instructions per request under callgrind, two servers at a time (a count,
    unlike a time, is not changed by the other one running beside it)."""
    print(f"counting instructions under callgrind ({len(targets) * len(setups)} servers)...")

    def count(target: Target, setup: ServerSetup) -> float:
        started = target.command(setup)
        return instructions_per_request(
            started.python,
            started.spec,
            started.env,
            target.path,
            body=target.body,
            headers={"X-API-Key": KEY} if target.auth else {},
            requests=COUNTED_REQUESTS,
        )

    jobs = [(target, setup) for setup in setups for target in targets]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda job: count(*job), jobs))
    return {(target.name, setup): n for (target, setup), n in zip(jobs, counts, strict=True)}


def report(
    targets: list[Target],
    setups: list[ServerSetup],
    summaries: dict[tuple[str, ServerSetup], Summary],
    work: dict[str, float],
    health: tuple[ServerSetup, LoadResult],
    fast: list[str] | None,
    use_wrk: bool,
    counted: dict[tuple[str, ServerSetup], float] | None,
) -> str:
    """The section of RESULTS.md: throughput, server CPU per request, instructions per
    request, ratios against the goals, and notes."""
    names = [t.name for t in targets]
    gens = ("in-repo", "wrk") if use_wrk else ("in-repo",)
    columns = [f"{s.label}, {gen}" for s in setups for gen in gens]

    def table(head: str, rows: list[list[str]], labels: list[str]) -> str:
        lines = [f"| {head} | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)

    def rps_cells(name: str) -> list[str]:
        cells = []
        for setup in setups:
            summary = summaries[name, setup]
            load_ = summary.load
            cells.append(
                f"{load_.rps:.0f} ({load_.percentile(50):.1f} / {load_.percentile(99):.1f})"
            )
            if use_wrk and summary.wrk is not None:
                cells.append(
                    f"{summary.wrk.rps:.0f} ({summary.wrk.p50_ms:.1f} / {summary.wrk.p99_ms:.1f})"
                )
        return cells

    def cpu_cells(name: str) -> list[str]:
        cells = []
        for setup in setups:
            summary = summaries[name, setup]
            values = [summary.cpu_us, summary.wrk_cpu_us] if use_wrk else [summary.cpu_us]
            cells += [f"{v:.0f}" if v is not None else "n/a" for v in values]
        return cells

    ratio_rows, misses, spreads = [], [], []
    for name in names[1:]:
        goal = GOALS.get(name)
        cells = []
        for setup in setups:
            ours_, theirs = summaries[THIS, setup], summaries[name, setup]
            each = ours_.round_ratios(theirs)
            ratio = statistics.median(each) if each else 0.0
            if goal is not None:
                spreads.append(
                    f"this / {name}, {setup.label}: {min(each):.2f}-{max(each):.2f}"
                    if each
                    else f"this / {name}, {setup.label}: n/a"
                )
                if ratio < goal:
                    misses.append((name, setup, ratio, goal))
            cells.append(ratio_cell(ratio, 1.0, goal))
            if use_wrk:
                cells.append(
                    ratio_cell(
                        ours_.wrk.rps if ours_.wrk else None,
                        theirs.wrk.rps if theirs.wrk else None,
                        goal,
                    )
                )
            cells.append(ratio_cell(theirs.cpu_us, ours_.cpu_us, goal))  # less CPU is faster
        ratio_rows.append([f"this / {name}", *cells])
    ratio_labels = [f"{s.label}, {gen}" for s in setups for gen in (*gens, "CPU")]
    over = work[THIS] - work[VALIDATING]
    notes = [
        "Per-request work in-process (each ASGI app called directly, no server; CPU time, the "
        f"median of {WORK_ROUNDS} alternating rounds): "
        f"this {work[THIS]:.0f} us, the validating bare handler {work[VALIDATING]:.0f} us, the "
        f"plain bare handler {work[BARE]:.0f} us. The framework (auth, body limit, admission, "
        "deadline and disconnect watching) costs "
        + (
            f"**{over:.0f} us** per request over the least a correct app does."
            if over > 0
            else f"nothing measurable over the least a correct app does ({over:.0f} us)."
        )
    ]
    for name, setup, ratio, goal in misses:
        theirs = summaries[name, setup]

        def reached(floor: str) -> float:
            return statistics.median(summaries[floor, setup].round_ratios(theirs))  # noqa: B023

        note = (
            f"**Missed:** this / {name} on {setup.label} is {ratio:.2f}x, {goal - ratio:.2f} "
            f"short of {goal:g}x ({(goal / ratio - 1) * 100:.0f}% more throughput needed). "
            f"In the same rounds, the plain ASGI callable (uvicorn alone, doing no work) reaches "
            f"{reached(RAW):.2f}x {name}, the plain validating one (the least a correct task app "
            f"does, with no framework) {reached(RAW_VALIDATING):.2f}x, and bare Starlette "
            f"{reached(BARE):.2f}x."
        )
        if counted is not None:
            count = {n: counted[n, setup] / 1000 for n in (name, RAW, RAW_VALIDATING, THIS)}
            note += (
                f" Counted under callgrind: {name} runs {count[name]:.0f}k instructions per "
                f"request, uvicorn alone {count[RAW]:.0f}k, the least a correct app "
                f"{count[RAW_VALIDATING]:.0f}k, this framework {count[THIS]:.0f}k. No app on "
                f"this server can go past {count[name] / count[RAW]:.2f}x {name}, nor a correct "
                f"one past {count[name] / count[RAW_VALIDATING]:.2f}x; this framework's own work "
                f"over the least a correct app is {count[THIS] - count[RAW_VALIDATING]:.0f}k."
            )
        notes.append(note)
    missing_peers = [p for p in (PUBLISHED, OPENENV_NAME) if p not in names]
    if missing_peers:
        notes.append(f"Not measured (could not be installed here): {', '.join(missing_peers)}.")
    if fast is None:
        notes.append("uvloop and httptools are not installed in this venv: only asyncio + h11 ran.")
    if not use_wrk:
        notes.append("wrk is not installed here (`make bench` installs it): no cross-check ran.")
    placement = (
        f"each server pinned to core {SERVER_CORE}, the load generators to core {LOAD_CORE}"
        if pinning()
        else "one core: servers and load generators share it (ratios are pulled toward 1)"
    )
    goals = ", ".join(f"{goal:g}x {name}" for name, goal in GOALS.items())
    instructions = ""
    if counted is not None:
        count_rows = [
            [n]
            + [
                f"{counted[n, setup] / 1000:.0f}k ({counted[n, setup] / counted[THIS, setup]:.2f}x)"
                for setup in setups
            ]
            for n in names
        ]
        instructions = f"""
Instructions per request, counted by valgrind's callgrind in the server process over
{COUNTED_REQUESTS} requests after a warm-up (in brackets: over this framework's count, i.e. how
many times faster this framework is on instructions alone). A count repeats to a fraction of a
percent whatever else the machine does; it leaves out the kernel's share (the sockets) and how
fast the instructions run, so it explains the timed ratios rather than replaces them:

{table("server", count_rows, [s.label for s in setups])}
"""
    else:
        notes.append("valgrind is not installed here: instructions per request were not counted.")
    return f"""
POST /rollout with a trivial executor (OpenEnv: POST /step, one episode per request), each
server in its own process under the same uvicorn, {placement}; {CONCURRENCY} keep-alive
connections, {WARMUP_S:g} s warm-up then {DURATION_S:g} s measured; median of {ROUNDS} alternating
rounds. Each server ran on {" and on ".join(s.label for s in setups)}
({", ".join(fast) if fast else "no standard extra"}); each load was driven by the in-repo
asyncio load generator{" and again by wrk (`-t1 -c32`, a cross-check)" if use_wrk else ""}.

Requests/s (p50 / p99 ms):

{table("server", [[n, *rps_cells(n)] for n in names], columns)}

Server CPU microseconds per request (counts only the time the server ran, so other work on
the machine does not skew it):

{table("server", [[n, *cpu_cells(n)] for n in names], columns)}
{instructions}
Ratios (throughput; CPU: the inverse ratio of CPU per request, in-repo load); goals: {goals}.
The goals are judged on the in-repo load's throughput, as the median of each round's ratio (the
two servers measured moments apart); each round's ratio ranged: {"; ".join(spreads)}.

{table("ratio", ratio_rows, ratio_labels)}

{chr(10).join(chr(10) + n for n in notes).strip()}

GET /health on this framework under 64 connections ({health[0].label}):
{health[1].rps:.0f} requests/s, p99 {health[1].percentile(99):.1f} ms.
"""


if __name__ == "__main__":
    main()
