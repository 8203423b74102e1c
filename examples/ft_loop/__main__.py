"""Run the toy fine-tuning loop as a `custom` job and print its id (first line), then a summary.

    python -m examples.ft_loop --jobs-server http://127.0.0.1:8002   # remote: RemoteEmitter
    python -m examples.ft_loop --db traces/jobs.db                    # in-process: JobEmitter

Follow it with `synth-ai jobs stream <id> --url <server>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from synth_ai.jobs import (
    JobEmitter,
    JobsService,
    RemoteEmitter,
    RemoteEmitterError,
    StreamSettings,
)

from .loop import FTConfig, FTSummary, run_ft


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.ft_loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--jobs-server", metavar="URL", help="post events to this jobs server")
    where.add_argument("--db", type=Path, help="run in-process on this job database instead")
    parser.add_argument("--api-key", default=os.environ.get("ENVIRONMENT_API_KEY"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--eval-every", type=int, default=16)
    parser.add_argument("--step-delay", type=float, default=0.02, help="seconds per step")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("traces/checkpoints"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = FTConfig(
        seed=args.seed, epochs=args.epochs, eval_every=args.eval_every, step_delay_s=args.step_delay
    )
    metadata = {"example": "ft_loop", "seed": args.seed}
    try:
        if args.db is not None:
            summary = asyncio.run(in_process(args.db, config, args.checkpoint_dir, metadata))
        else:
            summary = remote(args.jobs_server, args.api_key, config, args.checkpoint_dir, metadata)
    except RemoteEmitterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"succeeded: {summary.steps} steps, final loss {summary.train['loss']:.3f}, "
        f"val_loss {summary.eval['val_loss']:.3f}, accuracy {summary.eval['accuracy']:.3f}, "
        f"{len(summary.checkpoints)} checkpoints"
    )
    return 0


def remote(
    url: str, api_key: str | None, config: FTConfig, checkpoints: Path, metadata: dict[str, Any]
) -> FTSummary:
    emitter = RemoteEmitter.create_job(url, api_key, config=asdict(config), metadata=metadata)
    with emitter:
        print(emitter.job_id, flush=True)
        summary = run_ft(emitter, config, checkpoints / emitter.job_id)
    stats = emitter.stats  # closed: everything emitted is stored
    print(
        f"sent {stats.sent} events in {stats.posts} posts "
        f"(coalesced {stats.coalesced}, dropped {stats.dropped_metrics + stats.dropped_logs})"
    )
    return summary


async def in_process(
    db: Path, config: FTConfig, checkpoints: Path, metadata: dict[str, Any]
) -> FTSummary:
    service = JobsService(db, StreamSettings.from_environment())
    try:
        job = await service.create("custom", asdict(config), metadata)
        print(job["job_id"], flush=True)
        emitter = JobEmitter(service, job["job_id"])
        return await asyncio.to_thread(run_ft, emitter, config, checkpoints / job["job_id"])
    finally:
        await service.close()  # stores everything emitted before it returns


if __name__ == "__main__":
    sys.exit(main())
