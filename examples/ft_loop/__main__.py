"""Run the toy fine-tuning loop as a `custom` job and print its id (first line), then a summary.

    python -m examples.ft_loop --jobs-server http://127.0.0.1:8002   # remote: RemoteEmitter
    python -m examples.ft_loop --db traces/jobs.db                    # in-process: JobEmitter

Follow it with `synth-ai jobs stream <id> --url <server>`.
"""

from __future__ import annotations

import sys

from synth_ai.jobs import RemoteEmitterError

from ..loop_runner import job_arguments, run_as_job
from .loop import FTConfig, run_ft


def main(argv: list[str] | None = None) -> int:
    parser = job_arguments("python -m examples.ft_loop", __doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--eval-every", type=int, default=16)
    parser.add_argument("--step-delay", type=float, default=0.02, help="seconds per step")
    args = parser.parse_args(argv)
    config = FTConfig(
        seed=args.seed, epochs=args.epochs, eval_every=args.eval_every, step_delay_s=args.step_delay
    )
    try:
        summary = run_as_job(args, config, run_ft, "ft_loop")
    except RemoteEmitterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"succeeded: {summary.steps} steps, final loss {summary.train['loss']:.3f}, "
        f"val_loss {summary.eval['val_loss']:.3f}, accuracy {summary.eval['accuracy']:.3f}, "
        f"{len(summary.checkpoints)} checkpoints"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
