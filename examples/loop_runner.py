"""What the example training loops share (`rl_loop`, `ft_loop`): their summary, how they write
a checkpoint, and running one as a `custom` job, on a jobs server through a `RemoteEmitter` or
in this process on a job database through a `JobEmitter`. The job id is printed first, so a
caller can follow it at once."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from synth_ai.jobs import Emitter, JobEmitter, JobsService, RemoteEmitter, StreamSettings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Config = TypeVar("Config", bound="DataclassInstance")
Summary = TypeVar("Summary")
Loop = Callable[[Emitter, Config, Path], Summary]


@dataclass
class LoopSummary:
    """What a finished loop reports: its last train and eval values and its checkpoints."""

    steps: int
    epochs: int
    train: dict[str, float] = field(default_factory=dict)
    eval: dict[str, float] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)


def write_checkpoint(directory: Path, name: str, state: dict[str, Any]) -> str:
    """Write a checkpoint as JSON and answer its `file://` URL (`emit_artifact` uploads it)."""
    path = directory / f"{name}.json"
    path.write_text(json.dumps(state))
    return path.resolve().as_uri()


def job_arguments(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The options every example loop takes; each adds its own."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--jobs-server", metavar="URL", help="post events to this jobs server")
    where.add_argument("--db", type=Path, help="run in-process on this job database instead")
    parser.add_argument("--api-key", default=os.environ.get("ENVIRONMENT_API_KEY"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("traces/checkpoints"))
    return parser


def run_as_job(
    args: argparse.Namespace, config: Config, loop: Loop[Config, Summary], example: str
) -> Summary:
    """Create the job, print its id, run the loop; raises `RemoteEmitterError` when the jobs
    server refuses."""
    metadata = {"example": example, "seed": args.seed}
    if args.db is not None:
        return asyncio.run(_in_process(args.db, config, loop, args.checkpoint_dir, metadata))
    return _remote(args.jobs_server, args.api_key, config, loop, args.checkpoint_dir, metadata)


def _remote(
    url: str,
    api_key: str | None,
    config: Config,
    loop: Loop[Config, Summary],
    checkpoints: Path,
    metadata: dict[str, Any],
) -> Summary:
    emitter = RemoteEmitter.create_job(
        url,
        api_key,
        config=asdict(config),
        metadata=metadata,
    )
    with emitter:
        print(emitter.job_id, flush=True)
        summary = loop(emitter, config, checkpoints / emitter.job_id)
    stats = emitter.stats  # closed: everything emitted is stored
    print(
        f"sent {stats.sent} events in {stats.posts} posts "
        f"(coalesced {stats.coalesced}, dropped {stats.dropped_metrics + stats.dropped_logs})"
    )
    return summary


async def _in_process(
    db: Path,
    config: Config,
    loop: Loop[Config, Summary],
    checkpoints: Path,
    metadata: dict[str, Any],
) -> Summary:
    service = JobsService(db, StreamSettings.from_environment())
    try:
        job = await service.create("custom", asdict(config), metadata)
        print(job["job_id"], flush=True)
        emitter = JobEmitter(service, job["job_id"])
        return await asyncio.to_thread(loop, emitter, config, checkpoints / job["job_id"])
    finally:
        await service.close()  # stores everything emitted before it returns
