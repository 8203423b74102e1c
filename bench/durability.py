"""Events acknowledged per second by the jobs API now that a 201 means committed, against the
version before (commit b82202a), which answered before writing, and this checkout on PostgreSQL;
measured in the same run.

This checkout's jobs server runs forked, as the other benches' servers do. The previous version
runs from a git worktree of BEFORE in a temp dir, in a fresh interpreter of this venv with the
worktree first on PYTHONPATH (the child reports which `synth_ai` it imported, and it is checked).
Without git history (a source tarball) the "before" rows are skipped with a note.

PostgreSQL: a fresh database per round on the server of $SYNTH_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped afterwards; without a server (or psycopg) its
rows are skipped with a note. Its acknowledged events are counted in the database as SQLite's are.

Tracing with durable acknowledgement (a traced /rollout answers after its session commits) is
measured by bench/tracing_overhead.py; run it too (`make bench` does).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from textwrap import fill
from urllib.parse import urlsplit, urlunsplit

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
HEADER = (
    "| server | store | load | producers | posts/s | events/s | p50 ms | p99 ms | errors "
    "| unwritten | lost |\n" + "|---" * 11 + "|"
)
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
Store = Path | str  # a SQLite file, or a postgresql:// URL


def admin_url() -> str:
    return os.environ.get("SYNTH_BENCH_POSTGRES_URL") or DEFAULT_ADMIN_URL


def postgres_server() -> str:
    """The admin URL's host and port (never its password)."""
    parts = urlsplit(admin_url())
    return f"{parts.hostname}:{parts.port or 5432}"


def postgres_settings() -> str | None:
    """The server's version and commit settings; None (saying why) when none can be reached."""
    try:
        import psycopg
    except ImportError:
        print("psycopg is not installed (the postgres extra): PostgreSQL is not measured")
        return None
    try:
        with psycopg.connect(admin_url(), autocommit=True, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
            fsync = conn.execute("SHOW fsync").fetchone()[0]
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"no PostgreSQL at {postgres_server()}: {reason[:200]}: PostgreSQL is not measured")
        return None
    return f"PostgreSQL {version} (synchronous_commit={commit}, fsync={fsync})"


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the admin URL's server, dropped afterwards."""
    import psycopg

    name = f"synth_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url())._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Run:
    result: LoadResult
    acked: int  # events acknowledged over the whole run (warm-up and drain included)
    on_disk_at_end: int  # of the job's events, committed when the last acknowledgement arrived
    on_disk_after_stop: int = 0  # ... once the server has shut down


def jobs_app(db: str, artifacts_dir: str | None = None) -> object:
    from synth_ai.jobs import create_jobs_app

    return create_jobs_app(db, artifacts_dir=artifacts_dir)


def event_body(size: int) -> Callable[[int], dict]:
    if size == 1:
        return lambda n: {"type": "system.log", "message": f"event {n}"}
    return lambda n: {
        "events": [{"type": "system.log", "message": f"event {n}.{i}"} for i in range(size)]
    }


def count_events(db: Store, job_id: str) -> int:
    if isinstance(db, str):
        import psycopg

        with psycopg.connect(db) as conn:
            return conn.execute(
                "SELECT COUNT(*) FROM job_events WHERE job_id = %s", [job_id]
            ).fetchone()[0]
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(
            "SELECT COUNT(*) FROM job_events WHERE job_id = ?", [job_id]
        ).fetchone()[0]
    finally:
        connection.close()


def measure(url: str, db: Store) -> dict[str, tuple[str, Run]]:
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


def finish(runs: dict[str, tuple[str, Run]], db: Store) -> dict[str, Run]:
    """After the server stopped: how many events its file (or database) holds."""
    for job_id, run in runs.values():
        run.on_disk_after_stop = count_events(db, job_id)
    return {name: run for name, (_, run) in runs.items()}


def this_server(db: Store, artifacts_dir: Path) -> AbstractContextManager[str]:
    return server_process(
        lambda: jobs_app(str(db), str(artifacts_dir)), {"ENVIRONMENT_API_KEY": KEY}
    )


@contextmanager
def store_for(postgres: bool, file: Path) -> Iterator[Store]:
    """A fresh store: a new PostgreSQL database (dropped afterwards), else the SQLite `file`."""
    if not postgres:
        yield file
        return
    with fresh_database() as url:
        yield url


def missing_requirements(tree: Path) -> list[str]:
    """The dependencies in the tree's pyproject.toml that this interpreter has no distribution of
    (sqlite-utils, which BEFORE needs and this checkout no longer installs)."""
    import re
    import tomllib
    from importlib import metadata

    project = tomllib.loads((tree / "pyproject.toml").read_text())["project"]
    missing = []
    for requirement in project.get("dependencies", []):
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        try:
            metadata.distribution(name.group(0) if name else requirement)
        except metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


@contextmanager
def before_worktree(skipped: list[str]) -> Iterator[tuple[Path, str] | None]:
    """A detached worktree of BEFORE in a temp dir (removed afterwards) and the PYTHONPATH its
    server runs with; or None, with the reason appended to `skipped`.

    The dependencies of BEFORE that this venv lacks are installed (with theirs) by this venv's
    pip into a folder of the temp dir, after the worktree on that PYTHONPATH."""
    try:
        found = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{BEFORE}^{{commit}}"],
            capture_output=True,
        )
    except OSError:
        found = None
    if found is None or found.returncode != 0:
        skipped.append("no git history here (a source tarball?)")
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-before-"))
    tree = tmp / "src"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--quiet", "--detach", str(tree), BEFORE],
        check=True,
    )
    try:
        path = [str(tree)]
        missing = missing_requirements(tree)
        if missing:
            deps = tmp / "deps"
            print(f"before: installing {', '.join(missing)} (not in this venv) into {deps}")
            installed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--target",
                    str(deps),
                    *missing,
                ],
                capture_output=True,
                text=True,
            )
            if installed.returncode != 0:
                reason = (installed.stderr.strip().splitlines() or ["pip failed"])[-1][:200]
                skipped.append(f"its dependencies {', '.join(missing)} could not be installed")
                print(f"before: pip install failed: {reason}")
                yield None
                return
            path.append(str(deps))
        yield tree, os.pathsep.join(path)
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False
        )
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def before_server(tree: Path, pythonpath: str, db: Path, checked: list[str]) -> Iterator[str]:
    """The jobs server of the worktree; its stderr (a warning per event it drops) goes to a file
    next to `db`, summarised here."""
    env = {"ENVIRONMENT_API_KEY": KEY, "PYTHONPATH": pythonpath}
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
    # a variant is (server, store)
    now, before = ("this checkout", "SQLite"), (f"before ({BEFORE})", "SQLite")
    now_pg = ("this checkout", "PostgreSQL")
    files = {now: "now", before: "before", now_pg: "now-pg"}
    settings = postgres_settings()
    skipped: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    rounds: dict[tuple[str, str], list[dict[str, Run]]] = {now: []}
    try:
        with before_worktree(skipped) as worktree:
            if worktree is not None:
                rounds[before] = []
            if settings is not None:
                rounds[now_pg] = []
            checked: list[str] = []
            for n in range(ROUNDS):  # alternate, so drift in the machine hits all alike
                for variant in rounds:
                    file = work / f"{files[variant]}-{n}.db"
                    with store_for(variant == now_pg, file) as db:
                        server = (
                            before_server(*worktree, file, checked)
                            if worktree is not None and variant == before
                            else this_server(db, file.with_suffix(".artifacts"))
                        )
                        with server as url:
                            runs = measure(url, db)
                        rounds[variant].append(finish(runs, db))
                    done = rounds[variant][-1].items()
                    print(
                        f"round {n + 1}, {variant[0]} on {variant[1]}: "
                        + ", ".join(f"{k} {r.result.rps:.0f} posts/s" for k, r in done),
                        flush=True,
                    )
        fs = filesystem(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = {
        variant: {name: median_run_of(name, per_round) for name in LOADS}
        for variant, per_round in rounds.items()
    }
    rows = []
    for (server, store), by_load in results.items():
        for name, run in by_load.items():
            size = LOADS[name][0]
            r = run.result
            unwritten = run.acked - run.on_disk_at_end
            lost = run.acked - run.on_disk_after_stop
            rows.append(
                f"| {server} | {store} | {name} | {LOADS[name][1]} | {r.rps:.0f} "
                f"| {r.rps * size:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} "
                f"| {r.errors} | {unwritten} | {lost} |"
            )
    table = "\n".join(rows)
    losses = "".join(
        "\n\n"
        + wrap(
            f"**{server} on {store}, {name}: {run.acked - run.on_disk_after_stop} of {run.acked} "
            f"acknowledged events were never written** "
            f"({(run.acked - run.on_disk_after_stop) / run.acked:.0%}; the median round)."
        )
        for (server, store), by_load in results.items()
        for name, run in by_load.items()
        if run.acked > run.on_disk_after_stop
    )

    def ratios(top: tuple[str, str], bottom: tuple[str, str]) -> str:
        return ", ".join(
            f"{name} **{results[top][name].result.rps / results[bottom][name].result.rps:.2f}x**"
            for name in LOADS
        )

    if before in results:
        before_note = (
            f"**Events/s now / before (both on SQLite):** {ratios(now, before)}.\n\n"
            f"Before ({BEFORE}) the server acknowledged an event before writing it: the 201 came "
            "once the event was queued, and a batching thread wrote it later (batches of up to "
            "500, collected for at most 100 ms). When its 10,000-event queue was full it dropped "
            "the event, with a warning and a count, after the 201 had gone out; its events/s is "
            "then a rate of acknowledgement, not of writing. Now the 201 comes after the commit, "
            "and a writer thread commits whatever is queued in one transaction (group commit)."
        )
        before_note = "\n\n".join(wrap(part) for part in before_note.split("\n\n"))
    else:
        before_note = wrap(f"The version before ({BEFORE}) was not measured: {'; '.join(skipped)}.")
    if settings is not None:
        postgres = wrap(
            f"PostgreSQL: {settings}, on this machine (sharing its cores with the server and "
            "the producers), a fresh database per round."
        )
        postgres_note = wrap(
            f"**Events/s this checkout on PostgreSQL / on SQLite:** {ratios(now_pg, now)}. "
            "Every acknowledged event of both engines was counted in the database once the "
            'server had stopped ("lost" above).'
        )
    else:
        postgres = "PostgreSQL: not measured."
        postgres_note = wrap(
            f"PostgreSQL was not measured: no server answered at {postgres_server()} (set "
            "SYNTH_BENCH_POSTGRES_URL), or psycopg is not installed."
        )
    record(
        "durability",
        f"""
`POST /api/jobs/{{id}}/events` on a jobs server over SQLite on {fs} (WAL, synchronous=NORMAL, as
before this change: a commit survives the process being killed, not a power cut), and this
checkout's over PostgreSQL; each server in its own process under the same uvicorn settings,
producers on keep-alive connections, one job per load; {WARMUP_S:g} s warm-up then
{DURATION_S:g} s measured; the median of {ROUNDS} alternating rounds shown. Latency is per post.
"Unwritten" counts the load's acknowledged events not yet committed when its last answer arrived
(a snapshot); "lost", those still missing once the server had shut down. "This checkout" was
{label}.

{postgres}

{HEADER}
{table}{losses}

{before_note}

{postgres_note}

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
