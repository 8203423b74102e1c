"""Run the toy RL loop as a `custom` job and print its id (first line), then a summary.

    python -m examples.rl_loop --jobs-server http://127.0.0.1:8002   # remote: RemoteEmitter
    python -m examples.rl_loop --db traces/jobs.db                    # in-process: JobEmitter

Follow it with `synth-ai jobs stream <id> --url <server>`.
"""

from __future__ import annotations

import sys

from synth_ai.jobs import RemoteEmitterError

from ..loop_runner import job_arguments, run_as_job
from .loop import RLConfig, run_rl


def main(argv: list[str] | None = None) -> int:
    parser = job_arguments("python -m examples.rl_loop", __doc__)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument("--step-delay", type=float, default=0.01, help="seconds per step")
    args = parser.parse_args(argv)
    config = RLConfig(
        seed=args.seed, steps=args.steps, eval_every=args.eval_every, step_delay_s=args.step_delay
    )
    try:
        summary = run_as_job(args, config, run_rl, "rl_loop")
    except RemoteEmitterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"succeeded: {summary.steps} steps, train avg_reward {summary.train['avg_reward']:.3f}, "
        f"eval avg_reward {summary.eval['avg_reward']:.3f}, {len(summary.checkpoints)} checkpoints"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
