"""Cold start: from process start to the first 200 from POST /rollout.

Measured through `synth-ai serve math`, through the Modal entry's app as a container runs it
(`modal.is_local()` false, the entry imported, its web function's ASGI app served), and for the
same trivial app on this framework and on the published `synth-ai==0.2.24` (installed by
`framework_overhead.py` into bench/.cache/published). The math rollouts ask the offline policy,
already running in its own process. Each server is a fresh process on a fresh port, polled
every few milliseconds; rounds alternate; the median is shown.

Goal (issue #14): at most a quarter of 0.2.24's cold start.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.framework_overhead import PUBLISHED, body, ensure_published
from bench.harness import record, server_process
from synth_ai.deploy import ModalDeploySettings, build_plan

KEY = "bench-key"
ROUNDS = 7
POLL_S = 0.005
GIVE_UP_S = 120.0
BIN = Path(sys.executable).parent
BENCH = Path(__file__).parent
SERVE = "`synth-ai serve math` (this)"
ENTRY = "Modal entry's app, in-container path (this)"

# What Modal's container runtime has done before it imports the function's module; then the
# web function's ASGI app is served, as Modal's web front would.
CONTAINER = """
import sys, time
from modal._runtime.task_lifecycle_manager import _TaskLifecycleManager
_TaskLifecycleManager._singleton = object()
print(time.time(), flush=True)  # `import modal` done: where Modal's runtime hands over
import uvicorn
from synth_ai.deploy import entry
uvicorn.run(entry.web.local(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""

TRIVIAL = """
import sys, uvicorn
from bench.framework_overhead import ours
uvicorn.run(ours(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def offline_policy() -> object:
    from synth_ai.offline_policy import create_offline_policy_app

    return create_offline_policy_app(error_rate=0.0)


def first_rollout_s(
    command: list[str], port: int, payload: dict, env: dict[str, str]
) -> tuple[float, float | None]:
    """Seconds from starting `command` to its first 200 on POST /rollout; and, when the
    process prints a wall-clock time first (the container's hand-over mark), from that mark."""
    url = f"http://127.0.0.1:{port}/rollout"
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=BENCH.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        with httpx.Client(timeout=30) as client:
            while True:
                try:
                    response = client.post(url, json=payload, headers={"X-API-Key": KEY})
                except httpx.TransportError:
                    if process.poll() is not None or time.perf_counter() - started > GIVE_UP_S:
                        raise RuntimeError(f"{command[:3]} did not start") from None
                    time.sleep(POLL_S)
                    continue
                if response.status_code != 200:
                    raise RuntimeError(f"{command[:3]}: {response.status_code} {response.text}")
                elapsed, now = time.perf_counter() - started, time.time()
                break
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    first = out.split("\n", 1)[0].strip()
    try:
        return elapsed, now - float(first)
    except ValueError:
        return elapsed, None


def import_modal_s() -> float:
    """What `import modal` adds to a fresh process's start (medians of ROUNDS each)."""

    def start_s(code: str) -> float:
        samples = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=BENCH.parent)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    return start_s("import modal") - start_s("pass")


def main() -> None:
    published = ensure_published()
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    env.pop("TASKAPP_TRACING_ENABLED", None)
    with server_process(offline_policy) as policy_url:
        math_body = {
            "run_id": "cold",
            "env": {"seed": 1},
            "policy": {"config": {"inference_url": policy_url}},
            "mode": "eval",
        }
        subjects: dict[str, tuple[list[str], dict, dict[str, str]]] = {
            SERVE: (
                [str(BIN / "synth-ai"), "serve", "math", "--port", "{port}"],
                math_body,
                env,
            ),
            ENTRY: (
                [sys.executable, "-c", CONTAINER, "{port}"],
                math_body,
                {**env, **build_plan(ModalDeploySettings()).function_env},
            ),
            "trivial app, uvicorn (this)": (
                [sys.executable, "-c", TRIVIAL, "{port}"],
                body(1),
                env,
            ),
        }
        if published is not None:
            subjects[f"trivial app, uvicorn ({PUBLISHED})"] = (
                [str(published), str(BENCH / "published_app.py"), "{port}"],
                body(1),
                env,
            )
        samples: dict[str, list[float]] = {name: [] for name in subjects}
        after_modal: list[float] = []
        for _ in range(ROUNDS):
            for name, (command, payload, child_env) in subjects.items():
                port = free_port()
                argv = [part.replace("{port}", str(port)) for part in command]
                elapsed, from_mark = first_rollout_s(argv, port, payload, child_env)
                samples[name].append(elapsed)
                if name == ENTRY and from_mark is not None:
                    after_modal.append(from_mark)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    modal_s = import_modal_s()
    reference = medians.get(f"trivial app, uvicorn ({PUBLISHED})")
    rows = []
    for name, median in medians.items():
        ratio = f"{median / reference:.2f}x" if reference else "n/a"
        spread = f"{min(samples[name]) * 1000:.0f}-{max(samples[name]) * 1000:.0f}"
        rows.append(f"| {name} | {median * 1000:.0f} | {spread} | {ratio} |")
    verdicts = []
    if reference:
        for name in (SERVE, ENTRY):
            share = medians[name] / reference
            verdict = "meets" if share <= 0.25 else "misses"
            verdicts.append(f"**{name}: {share:.2f}x of {PUBLISHED}** (goal <= 0.25x: {verdict}).")
    else:
        verdicts.append(f"{PUBLISHED} could not be installed on this machine.")
    handed_over = statistics.median(after_modal)
    share = f", {handed_over / reference:.2f}x of {PUBLISHED}" if reference else ""
    verdicts.append(
        f"The Modal entry's row includes `import modal` ({modal_s * 1000:.0f} ms in a fresh "
        "process), which Modal's container runtime has done before it imports the entry: from "
        f"that point to the first 200, {handed_over * 1000:.0f} ms{share}."
    )
    table = "\n".join(rows)
    summary = "\n".join(verdicts)
    record(
        "cold start",
        f"""
Process start to the first 200 from POST /rollout (median of {ROUNDS} alternating rounds, polled
every {POLL_S * 1000:.0f} ms). The math rollouts make one call to the offline policy (already
running); the trivial app answers at once. The Modal entry's row runs the entry as a container
does (`modal.is_local()` false, then its web function's ASGI app under uvicorn), in this
checkout's virtualenv: Modal's own container start and image pull are not in it.

| server | first 200 ms | min-max ms | vs {PUBLISHED} |
|---|---|---|---|
{table}

{summary}
""",
    )
    print(table)
    print(summary)


if __name__ == "__main__":
    main()
