"""A toy fine-tuning loop: logistic regression fit by minibatch SGD on seeded synthetic data.

Plain Python, no ML libraries. Where it emits job events (DESIGN.md 5):

- `job.status` running at the start and every `status_every` optimizer steps
  (`{state, step, epoch, phase}`), on every phase change (`train` -> `eval` -> `train` ...),
  and `succeeded` last (or `failed`/`canceled` if the loop ends early);
- `ft.train.metric` per optimizer step: `loss` and `lr` (split `train`);
- `ft.eval.metric` per validation: `val_loss` and `accuracy` (split `eval`);
- `artifact.checkpoint` after each validation (`{kind, url, step}`), with a `system.log` line.

The emitter is anything with the `Emitter` methods: a `JobEmitter` in the server's process,
or a `RemoteEmitter` posting to a jobs server.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from synth_ai.jobs import Emitter, JobState

from ..loop_runner import LoopSummary, write_checkpoint

Example = tuple[list[float], int]


@dataclass(frozen=True)
class FTConfig:
    seed: int = 0
    features: int = 6
    train_size: int = 512
    val_size: int = 128
    batch_size: int = 32
    epochs: int = 4
    lr: float = 0.5
    warmup_steps: int = 8
    status_every: int = 8
    eval_every: int = 16
    label_noise: float = 0.05
    step_delay_s: float = 0.0
    """Pacing, so a live view has something to watch (0: as fast as it runs)."""


def make_data(config: FTConfig) -> tuple[list[Example], list[Example]]:
    """Points labelled by a hidden linear rule, with some labels flipped."""
    rng = random.Random(config.seed)
    truth = [rng.gauss(0, 1) for _ in range(config.features)]

    def point() -> Example:
        x = [rng.gauss(0, 1) for _ in range(config.features)]
        label = int(sum(w * v for w, v in zip(truth, x, strict=True)) > 0)
        return x, label ^ (rng.random() < config.label_noise)

    return (
        [point() for _ in range(config.train_size)],
        [point() for _ in range(config.val_size)],
    )


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def bce(p: float, label: int) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return -math.log(p) if label else -math.log(1 - p)


def learning_rate(config: FTConfig, step: int, total: int) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def run_ft(emitter: Emitter, config: FTConfig, checkpoint_dir: Path) -> LoopSummary:
    """Fit, validate and checkpoint, reporting through `emitter`; answers a summary."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    train, val = make_data(config)
    rng = random.Random(config.seed + 1)
    weights = [0.0] * (config.features + 1)  # the last one is the bias
    per_epoch = math.ceil(config.train_size / config.batch_size)
    total = per_epoch * config.epochs
    summary = LoopSummary(steps=0, epochs=0)
    step = epoch = 0
    emitter.emit_status(
        JobState.RUNNING, "fine-tuning started", step=0, epoch=0, phase="train", total=total
    )
    emitter.emit_log(
        f"logistic regression on {config.train_size} examples ({config.features} features), "
        f"{total} steps of {config.batch_size}, seed {config.seed}"
    )
    try:
        for epoch in range(config.epochs):
            order = list(range(len(train)))
            rng.shuffle(order)
            for start in range(0, len(order), config.batch_size):
                step += 1
                batch = [train[i] for i in order[start : start + config.batch_size]]
                lr = learning_rate(config, step, total)
                grad = [0.0] * len(weights)
                loss = 0.0
                for x, label in batch:
                    p = sigmoid(_logit(weights, x))
                    loss += bce(p, label)
                    for i, v in enumerate((*x, 1.0)):
                        grad[i] += (p - label) * v
                weights = [w - lr * g / len(batch) for w, g in zip(weights, grad, strict=True)]
                summary.train = {"loss": loss / len(batch), "lr": lr}
                for name, value in summary.train.items():
                    emitter.emit_metric(
                        name, value, step=step, epoch=epoch, split="train", type="ft.train.metric"
                    )
                if step % config.status_every == 0:
                    emitter.emit_status(
                        JobState.RUNNING, step=step, epoch=epoch, phase="train", total=total
                    )
                if step % config.eval_every == 0 or step == total:
                    summary.eval = _validate(emitter, weights, val, step, epoch)
                    url = _checkpoint(checkpoint_dir, step, epoch, weights, config)
                    emitter.emit_artifact("checkpoint", url, step=step, epoch=epoch)
                    emitter.emit_log(f"saved checkpoint step={step} to {url}")
                    summary.checkpoints.append(url)
                    if step < total:
                        emitter.emit_status(JobState.RUNNING, step=step, epoch=epoch, phase="train")
                if config.step_delay_s:
                    time.sleep(config.step_delay_s)
    except KeyboardInterrupt:
        emitter.emit_status(JobState.CANCELED, "interrupted", step=step, epoch=epoch)
        raise
    except Exception as exc:
        emitter.emit_status(JobState.FAILED, f"{type(exc).__name__}: {exc}", step=step, epoch=epoch)
        raise
    summary.steps, summary.epochs = step, config.epochs
    emitter.emit_status(
        JobState.SUCCEEDED,
        f"trained {step} steps; val accuracy {summary.eval['accuracy']:.3f}",
        step=step,
        epoch=epoch,
        phase="done",
    )
    return summary


def _logit(weights: list[float], x: list[float]) -> float:
    return sum(w * v for w, v in zip(weights[:-1], x, strict=True)) + weights[-1]


def _validate(
    emitter: Emitter, weights: list[float], val: list[Example], step: int, epoch: int
) -> dict[str, float]:
    emitter.emit_status(JobState.RUNNING, step=step, epoch=epoch, phase="eval")
    loss = correct = 0.0
    for x, label in val:
        p = sigmoid(_logit(weights, x))
        loss += bce(p, label)
        correct += (p >= 0.5) == bool(label)
    values = {"val_loss": loss / len(val), "accuracy": correct / len(val)}
    for name, value in values.items():
        emitter.emit_metric(
            name, value, step=step, epoch=epoch, split="eval", type="ft.eval.metric"
        )
    return values


def _checkpoint(
    directory: Path, step: int, epoch: int, weights: list[float], config: FTConfig
) -> str:
    state = {"step": step, "epoch": epoch, "weights": weights, "config": asdict(config)}
    return write_checkpoint(directory, f"ft-step{step:05d}", state)
