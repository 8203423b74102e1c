"""Run the toy RL loop as a `custom` job and print its id (first line), then a summary.

    python -m examples.rl_loop --jobs-server http://127.0.0.1:8002   # remote: RemoteEmitter
    python -m examples.rl_loop --db traces/jobs.db                    # in-process: JobEmitter

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

from .loop import RLConfig, RLSummary, run_rl


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.rl_loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--jobs-server", metavar="URL", help="post events to this jobs server")
    where.add_argument("--db", type=Path, help="run in-process on this job database instead")
    parser.add_argument("--api-key", default=os.environ.get("ENVIRONMENT_API_KEY"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument("--step-delay", type=float, default=0.01, help="seconds per step")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("traces/checkpoints"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = RLConfig(
        seed=args.seed, steps=args.steps, eval_every=args.eval_every, step_delay_s=args.step_delay
    )
    metadata = {"example": "rl_loop", "seed": args.seed}
    try:
        if args.db is not None:
            summary = asyncio.run(in_process(args.db, config, args.checkpoint_dir, metadata))
        else:
            summary = remote(args.jobs_server, args.api_key, config, args.checkpoint_dir, metadata)
    except RemoteEmitterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"succeeded: {summary.steps} steps, train avg_reward {summary.train['avg_reward']:.3f}, "
        f"eval avg_reward {summary.eval['avg_reward']:.3f}, {len(summary.checkpoints)} checkpoints"
    )
    return 0


def remote(
    url: str, api_key: str | None, config: RLConfig, checkpoints: Path, metadata: dict[str, Any]
) -> RLSummary:
    emitter = RemoteEmitter.create_job(url, api_key, config=asdict(config), metadata=metadata)
    with emitter:
        print(emitter.job_id, flush=True)
        summary = run_rl(emitter, config, checkpoints / emitter.job_id)
    stats = emitter.stats  # closed: everything emitted is stored
    print(
        f"sent {stats.sent} events in {stats.posts} posts "
        f"(coalesced {stats.coalesced}, dropped {stats.dropped_metrics + stats.dropped_logs})"
    )
    return summary


async def in_process(
    db: Path, config: RLConfig, checkpoints: Path, metadata: dict[str, Any]
) -> RLSummary:
    service = JobsService(db, StreamSettings.from_environment())
    try:
        job = await service.create("custom", asdict(config), metadata)
        print(job["job_id"], flush=True)
        emitter = JobEmitter(service, job["job_id"])
        return await asyncio.to_thread(run_rl, emitter, config, checkpoints / job["job_id"])
    finally:
        await service.close()  # stores everything emitted before it returns


if __name__ == "__main__":
    sys.exit(main())
