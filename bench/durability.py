"""Events acknowledged per second by the jobs API now that a 201 means committed, against the
version before (commit b82202a), which answered before writing; measured in the same run.

This checkout's jobs server runs forked, as the other benches' servers do. The previous version
runs from a git worktree of BEFORE in a temp dir, in a fresh interpreter of this venv with the
worktree first on PYTHONPATH (the child reports which `synth_ai` it imported, and it is checked).
Without git history (a source tarball) the "before" rows are skipped with a note.

Tracing with durable acknowledgement (a traced /rollout answers after its session commits) is
measured by bench/tracing_overhead.py; run it too (`make bench` does).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from textwrap import fill

import httpx

from bench.harness import LoadResult, command_server, load, median_run, record, server_process

KEY = "bench-key"
BEFORE = "b82202a"
REPO = Path(__file__).resolve().parents[1]
ROUNDS = 3
WARMUP_S = 1.0
DURATION_S = 4.0
BATCH = 100
# name -> (events per post, concurrent producers)
LOADS = {"single events": (1, 16), f"{BATCH}-event batches": (BATCH, 4)}


@dataclass
class Run:
    result: LoadResult
    acked: int  # events acknowledged over the whole run (warm-up and drain included)
    on_disk_at_end: int  # of the job's events, committed when the last acknowledgement arrived
    on_disk_after_stop: int = 0  # ... once the server has shut down


def jobs_app(db_path: str) -> object:
    from synth_ai.jobs import create_jobs_app

    return create_jobs_app(db_path)


def event_body(size: int) -> Callable[[int], dict]:
    if size == 1:
        return lambda n: {"type": "system.log", "message": f"event {n}"}
    return lambda n: {
        "events": [{"type": "system.log", "message": f"event {n}.{i}"} for i in range(size)]
    }


def count_events(db: Path, job_id: str) -> int:
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(
            "SELECT COUNT(*) FROM job_events WHERE job_id = ?", [job_id]
        ).fetchone()[0]
    finally:
        connection.close()


def measure(url: str, db: Path) -> dict[str, tuple[str, Run]]:
    runs = {}
    for name, (size, producers) in LOADS.items():
        job = httpx.post(f"{url}/api/jobs", json={"kind": "custom"}, headers={"X-API-Key": KEY})
        job.raise_for_status()
        job_id = job.json()["job_id"]
        result = load(
            url,
            f"/api/jobs/{job_id}/events",
            method="POST",
            body=event_body(size),
            headers={"X-API-Key": KEY},
            concurrency=producers,
            warmup_s=WARMUP_S,
            duration_s=DURATION_S,
        )
        acked = sum(n for status, n in result.statuses.items() if status == 201) * size
        runs[name] = (job_id, Run(result, acked, count_events(db, job_id)))
    return runs


def finish(runs: dict[str, tuple[str, Run]], db: Path) -> dict[str, Run]:
    """After the server stopped: how many events its file holds."""
    for job_id, run in runs.values():
        run.on_disk_after_stop = count_events(db, job_id)
    return {name: run for name, (_, run) in runs.items()}


def this_server(db: Path) -> AbstractContextManager[str]:
    return server_process(lambda: jobs_app(str(db)), {"ENVIRONMENT_API_KEY": KEY})


@contextmanager
def before_worktree() -> Iterator[Path | None]:
    """A detached worktree of BEFORE in a temp dir (removed afterwards), or None without git."""
    try:
        found = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{BEFORE}^{{commit}}"],
            capture_output=True,
        )
    except OSError:
        found = None
    if found is None or found.returncode != 0:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-before-"))
    tree = tmp / "src"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--quiet", "--detach", str(tree), BEFORE],
        check=True,
    )
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False
        )
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def before_server(tree: Path, db: Path, checked: list[str]) -> Iterator[str]:
    """The jobs server of the worktree; its stderr (a warning per event it drops) goes to a file
    next to `db`, summarised here."""
    env = {"ENVIRONMENT_API_KEY": KEY, "PYTHONPATH": str(tree)}
    log = db.with_suffix(".stderr")
    with (
        log.open("w") as stderr,
        command_server(
            "synth_ai.jobs:create_jobs_app", str(db), env=env, cwd=tree, stderr=stderr
        ) as (url, origin),
    ):
        if not Path(origin).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"the 'before' server imported synth_ai from {origin}, not {tree}")
        if not checked:
            print(f"before: the server imports synth_ai from {origin}", flush=True)
            checked.append(origin)
        yield url
    lines = log.read_text().splitlines()
    if lines:
        print(f"before server ({db.name}): {len(lines)} stderr lines, the last: {lines[-1]}")


def checkout() -> str:
    """HEAD of this checkout, and whether synth_ai/ differs from it (others may be editing)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "synth_ai"],
            capture_output=True,
            text=True,
        )
    except OSError:
        return "not a git checkout"
    if head.returncode != 0:
        return "not a git checkout"
    edits = " with uncommitted changes to synth_ai/" if dirty.stdout.strip() else ""
    return f"HEAD {head.stdout.strip()}{edits}"


def filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (fsync costs differ: ext4 versus tmpfs)."""
    best, kind = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        mount, fstype = line.split()[1:3]
        inside = str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount
        if inside and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def main() -> None:
    import synth_ai

    label = checkout()
    print(f"this checkout ({label}): synth_ai from {synth_ai.__file__}", flush=True)
    now, before = "this checkout", f"before ({BEFORE})"
    work = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    rounds: dict[str, list[dict[str, Run]]] = {now: []}
    try:
        with before_worktree() as tree:
            if tree is not None:
                rounds[before] = []
            checked: list[str] = []
            for n in range(ROUNDS):  # alternate, so drift in the machine hits both alike
                for variant in rounds:
                    db = work / f"{'now' if variant == now else 'before'}-{n}.db"
                    server = (
                        this_server(db)
                        if tree is None or variant == now
                        else before_server(tree, db, checked)
                    )
                    with server as url:
                        runs = measure(url, db)
                    rounds[variant].append(finish(runs, db))
        fs = filesystem(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = {
        variant: {name: median_run_of(name, per_round) for name in LOADS}
        for variant, per_round in rounds.items()
    }
    rows = []
    for variant, by_load in results.items():
        for name, run in by_load.items():
            size = LOADS[name][0]
            r = run.result
            unwritten = run.acked - run.on_disk_at_end
            lost = run.acked - run.on_disk_after_stop
            rows.append(
                f"| {variant} | {name} | {LOADS[name][1]} | {r.rps:.0f} | {r.rps * size:.0f} "
                f"| {r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.errors} "
                f"| {unwritten} | {lost} |"
            )
    table = "\n".join(rows)
    losses = "".join(
        "\n\n"
        + wrap(
            f"**{variant}, {name}: {run.acked - run.on_disk_after_stop} of {run.acked} "
            f"acknowledged events were never written** "
            f"({(run.acked - run.on_disk_after_stop) / run.acked:.0%}; the median round)."
        )
        for variant, by_load in results.items()
        for name, run in by_load.items()
        if run.acked > run.on_disk_after_stop
    )
    if len(results) > 1:
        ratios = ", ".join(
            f"{name} **{results[now][name].result.rps / results[before][name].result.rps:.2f}x**"
            for name in LOADS
        )
        before_note = (
            f"**Events/s now / before:** {ratios}.\n\n"
            f"Before ({BEFORE}) the server acknowledged an event before writing it: the 201 came "
            "once the event was queued, and a batching thread wrote it later (batches of up to "
            "500, collected for at most 100 ms). When its 10,000-event queue was full it dropped "
            "the event, with a warning and a count, after the 201 had gone out; its events/s is "
            "then a rate of acknowledgement, not of writing. Now the 201 comes after the commit, "
            "and a writer thread commits whatever is queued in one transaction (group commit)."
        )
        before_note = "\n\n".join(wrap(part) for part in before_note.split("\n\n"))
    else:
        before_note = wrap(
            f"No git history here (a source tarball?), so the version before ({BEFORE}) was not "
            "measured."
        )
    record(
        "durability",
        f"""
`POST /api/jobs/{{id}}/events` on a jobs server over SQLite on {fs} (WAL, synchronous=NORMAL, as
before this change: a commit survives the process being killed, not a power cut); each server in its
own process under the same uvicorn settings, producers on keep-alive connections, one job per
load; {WARMUP_S:g} s warm-up then {DURATION_S:g} s measured; the median of {ROUNDS} alternating
rounds shown. Latency is per post. "Unwritten" counts the load's acknowledged events not yet
committed when its last answer arrived (a snapshot); "lost", those still missing once the server
had shut down. "This checkout" was {label}.

| server | load | producers | posts/s | events/s | p50 ms | p99 ms | errors | unwritten | lost |
|---|---|---|---|---|---|---|---|---|---|
{table}{losses}

{before_note}

Tracing with durable acknowledgement (a traced /rollout answers after its session commits):
see "tracing overhead".
""",
    )
    for line in rows:
        print(line)


def wrap(text: str) -> str:
    return fill(text, 96)


def median_run_of(name: str, per_round: list[dict[str, Run]]) -> Run:
    chosen = median_run([by_load[name].result for by_load in per_round])
    return next(by_load[name] for by_load in per_round if by_load[name].result is chosen)


if __name__ == "__main__":
    main()
