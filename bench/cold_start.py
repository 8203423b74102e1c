"""Cold start: from process start to the first 200 from POST /rollout.

Measured through `synth-ai serve math`, through the Modal entry's app as a container runs it
(`modal.is_local()` false, the entry imported, its web function's ASGI app served), and for the
same trivial app on this framework and on the published `synth-ai==0.2.24` (installed by
`framework_overhead.py` into bench/.cache/published), each under plain uvicorn and through its
project's serve command. This checkout runs from fresh installs of
its own (built as a user installs it: the base install, and with the `modal` extra for the
entry), so nothing of the development virtualenv is loaded. The math rollouts ask the offline
policy, already running in its own process. Each server is a fresh process on a fresh port,
polled every few milliseconds; rounds alternate; the median is shown.

Goal (issue #14): at most a quarter of 0.2.24's cold start.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.framework_overhead import PUBLISHED, body, ensure_published
from bench.harness import fresh_install, record, server_process
from synth_ai.deploy import ModalDeploySettings, build_plan

KEY = "bench-key"
ROUNDS = 7
POLL_S = 0.005
GIVE_UP_S = 120.0
GOAL = 0.25
BENCH = Path(__file__).parent
TRIVIAL_APP = BENCH / "trivial_app.py"
PORT = ("--port", "{port}")
PUBLISHED_SERVE = ("task-app-group", "serve", "trivial", "--host", "127.0.0.1", "--no-reload")
"""0.2.24's `synth-ai serve` exits 0 without serving; this is the command of its that serves."""
SERVE = "`synth-ai serve math` (this)"
SERVE_TRIVIAL = "trivial app, `synth-ai serve` (this)"
ENTRY = "Modal entry's app, in-container path (this)"
HANDED_OVER = "... from Modal's hand-over (after `import modal`)"
TRIVIAL = "trivial app, uvicorn (this)"
PUBLISHED_UVICORN = f"trivial app, uvicorn ({PUBLISHED})"
PUBLISHED_CLI = f"trivial app, `synth-ai task-app-group serve` ({PUBLISHED})"

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def offline_policy() -> object:
    from synth_ai.offline_policy import create_offline_policy_app

    return create_offline_policy_app(error_rate=0.0)


def first_rollout_s(
    command: list[str], port: int, payload: dict, env: dict[str, str], cwd: str
) -> tuple[float, float | None]:
    """Seconds from starting `command` to its first 200 on POST /rollout; and, when the
    process prints a wall-clock time first (the container's hand-over mark), from that mark."""
    url = f"http://127.0.0.1:{port}/rollout"
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
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


def import_modal_s(python: Path, cwd: str) -> float:
    """What `import modal` adds to a fresh process's start (medians of ROUNDS each)."""

    def start_s(code: str) -> float:
        samples = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            subprocess.run([str(python), "-c", code], check=True, cwd=cwd)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    return start_s("import modal") - start_s("pass")


def main() -> None:
    published = ensure_published()
    base, with_modal = fresh_install(), fresh_install("modal")
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    for name in list(env):
        if name.startswith(("TASKAPP_", "OTEL_", "PYTHON")):
            del env[name]
    with (
        server_process(offline_policy) as policy_url,
        tempfile.TemporaryDirectory() as cwd,
        tempfile.TemporaryDirectory() as published_cwd,
    ):
        math_body = {
            "run_id": "cold",
            "env": {"seed": 1},
            "policy": {"config": {"inference_url": policy_url}},
            "mode": "eval",
        }
        subjects: dict[str, tuple[list[str], dict, dict[str, str], str]] = {
            SERVE: (
                [str(base.parent / "synth-ai"), "serve", "math", *PORT],
                math_body,
                env,
                cwd,
            ),
            SERVE_TRIVIAL: (
                [str(base.parent / "synth-ai"), "serve", f"{TRIVIAL_APP}:config", *PORT],
                body(1),
                env,
                cwd,
            ),
            ENTRY: (
                [str(with_modal), "-c", CONTAINER, "{port}"],
                math_body,
                {**env, **build_plan(ModalDeploySettings()).function_env},
                cwd,
            ),
            TRIVIAL: ([str(base), str(TRIVIAL_APP), "{port}"], body(1), env, cwd),
        }
        if published is not None:
            subjects[PUBLISHED_UVICORN] = (
                [str(published), str(BENCH / "published_app.py"), "{port}"],
                body(1),
                env,
                cwd,
            )
            shutil.copy(BENCH / "published_app.py", Path(published_cwd) / "trivial_task_app.py")
            subjects[PUBLISHED_CLI] = (
                [str(published.parent / "synth-ai"), *PUBLISHED_SERVE, *PORT],
                body(1),
                # Its CLI asks for a Groq key unless one is set (and aborts with no terminal),
                # writes a queue database under HOME, and traces unless told not to.
                {**env, "GROQ_API_KEY": "unused", "HOME": published_cwd, "SYNTH_AUTO_TRACE": "0"},
                published_cwd,
            )
        samples: dict[str, list[float]] = {name: [] for name in subjects}
        after_modal: list[float] = []
        for _ in range(ROUNDS):
            for name, (command, payload, child_env, where) in subjects.items():
                port = free_port()
                argv = [part.replace("{port}", str(port)) for part in command]
                elapsed, from_mark = first_rollout_s(argv, port, payload, child_env, where)
                samples[name].append(elapsed)
                if name == ENTRY and from_mark is not None:
                    after_modal.append(from_mark)
        modal_s = import_modal_s(with_modal, cwd)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    handed_over = statistics.median(after_modal)
    by_uvicorn, by_cli = medians.get(PUBLISHED_UVICORN), medians.get(PUBLISHED_CLI)

    def ratio(seconds: float, reference: float | None) -> str:
        return f"{seconds / reference:.2f}x" if reference else "n/a"

    def row(name: str, seconds: float, spread: list[float]) -> str:
        return (
            f"| {name} | {seconds * 1000:.0f} | {min(spread) * 1000:.0f}-{max(spread) * 1000:.0f}"
            f" | {ratio(seconds, by_uvicorn)} | {ratio(seconds, by_cli)} |"
        )

    rows = []
    for name, median in medians.items():
        rows.append(row(name, median, samples[name]))
        if name == ENTRY:
            rows.append(row(HANDED_OVER, handed_over, after_modal))
    verdicts = []
    if by_uvicorn and by_cli:
        for name, seconds, reference, against in (
            (SERVE, medians[SERVE], by_cli, "its serve command serving the trivial app"),
            (SERVE_TRIVIAL, medians[SERVE_TRIVIAL], by_cli, "its serve command, same app"),
            (f"{ENTRY}, from the hand-over", handed_over, by_uvicorn, "its app under uvicorn"),
        ):
            share = seconds / reference
            verdict = (
                "meets"
                if share <= GOAL
                else f"misses by {(seconds - GOAL * reference) * 1000:.0f} ms"
            )
            verdicts.append(
                f"**{name}: {share:.2f}x of {PUBLISHED}, {against}** (goal <= {GOAL}x: {verdict})."
            )
        verdicts.append(
            f"Against 0.2.24's cheapest start (its app under plain uvicorn, no CLI), "
            f"`synth-ai serve math` is {ratio(medians[SERVE], by_uvicorn)} and the trivial app "
            f"through `synth-ai serve` {ratio(medians[SERVE_TRIVIAL], by_uvicorn)}."
        )
    else:
        verdicts.append(f"{PUBLISHED} could not be installed on this machine.")
    verdicts.append(
        f"The Modal entry's full row includes `import modal` ({modal_s * 1000:.0f} ms in a fresh "
        "process), which Modal's container runtime does before it imports any app (0.2.24's "
        "too, deployed there), so the goal is judged from that hand-over."
    )
    table = "\n".join(rows)
    summary = "\n".join(verdicts)
    record(
        "cold start",
        f"""
Process start to the first 200 from POST /rollout (median of {ROUNDS} alternating rounds, polled
every {POLL_S * 1000:.0f} ms). This checkout runs from fresh installs of its own, built as a
user installs it (the base install; the `modal` extra for the entry), outside the checkout; 0.2.24
from its published wheel. The math rollouts make one call to the offline policy (already
running, plain HTTP); the trivial apps answer at once. The Modal entry's row runs the entry as a
container does (`modal.is_local()` false, then its web function's ASGI app under uvicorn): Modal's
own container start and image pull are not in it.

0.2.24 is measured two ways: its trivial app under plain uvicorn (the least it can do), and
through its own serve command. Its `synth-ai serve` exits 0 without serving; the command that
serves is `synth-ai task-app-group serve`, given a Groq key so it does not stop to ask for one,
and `SYNTH_AUTO_TRACE=0` (tracing off, as here). Each serve command is judged against 0.2.24's;
the Modal entry against 0.2.24's app under uvicorn, which is what 0.2.24's generated Modal
function does in a container (import the app's module, build it with `create_task_app`).

| server | first 200 ms | min-max ms | vs 0.2.24 under uvicorn | vs 0.2.24 through its CLI |
|---|---|---|---|---|
{table}

{summary}
""",
    )
    print(table)
    print(summary)


if __name__ == "__main__":
    main()
