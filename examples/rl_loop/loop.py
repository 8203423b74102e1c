"""A toy RL loop: a softmax policy learns a seeded multi-armed bandit by policy gradient.

Plain Python, no ML libraries. It shows where a training loop emits job events (DESIGN.md 5):

- `job.status` running when training starts and every `status_every` steps
  (`{state, step, epoch, phase}`), on every phase change (`train` -> `eval` -> `train` ...),
  and `succeeded` last (or `failed`/`canceled` if the loop ends early);
- `rl.train.metric` per step: `avg_reward`, `return`, `success_rate` (split `train`);
- `rl.eval.metric` per evaluation: the same names on fixed held-out seeds (split `eval`);
- `artifact.checkpoint` after each evaluation (`{kind, url, step}`), with a `system.log` line.

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


@dataclass(frozen=True)
class RLConfig:
    seed: int = 0
    arms: int = 5
    horizon: int = 10
    """Pulls per episode; an episode's return is the sum of its rewards."""
    episodes_per_step: int = 8
    steps: int = 120
    steps_per_epoch: int = 20
    status_every: int = 10
    eval_every: int = 40
    eval_episodes: int = 32
    lr: float = 0.5
    success_return: int = 7
    """An episode succeeds when its return reaches this."""
    step_delay_s: float = 0.0
    """Pacing, so a live view has something to watch (0: as fast as it runs)."""


class Bandit:
    """Bernoulli arms with seeded success probabilities."""

    def __init__(self, arms: int, seed: int) -> None:
        rng = random.Random(seed)
        self.probs = [round(rng.uniform(0.1, 0.6), 3) for _ in range(arms)]
        self.probs[rng.randrange(arms)] = 0.85  # one clearly best arm

    def pull(self, arm: int, rng: random.Random) -> float:
        return 1.0 if rng.random() < self.probs[arm] else 0.0


def softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def sample(probs: list[float], rng: random.Random) -> int:
    return rng.choices(range(len(probs)), weights=probs)[0]


def run_rl(emitter: Emitter, config: RLConfig, checkpoint_dir: Path) -> LoopSummary:
    """Train, evaluate and checkpoint, reporting through `emitter`; answers a summary."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    env = Bandit(config.arms, config.seed)
    rng = random.Random(config.seed + 1)
    logits = [0.0] * config.arms
    baseline = 0.0
    summary = LoopSummary(steps=0, epochs=0)
    step = epoch = 0
    emitter.emit_status(
        JobState.RUNNING, "training started", step=0, epoch=0, phase="train", total=config.steps
    )
    emitter.emit_log(
        f"bandit with {config.arms} arms, {config.episodes_per_step} episodes of "
        f"{config.horizon} pulls per step, seed {config.seed}"
    )
    try:
        for step in range(1, config.steps + 1):
            epoch = (step - 1) // config.steps_per_epoch
            probs = softmax(logits)
            grad = [0.0] * config.arms
            returns: list[float] = []
            for _ in range(config.episodes_per_step):
                episode_return = 0.0
                for _ in range(config.horizon):
                    arm = sample(probs, rng)
                    reward = env.pull(arm, rng)
                    advantage = reward - baseline
                    for a in range(config.arms):  # d log pi(arm) / d logit_a
                        grad[a] += advantage * ((1.0 if a == arm else 0.0) - probs[a])
                    episode_return += reward
                returns.append(episode_return)
            pulls = config.episodes_per_step * config.horizon
            logits = [w + config.lr * g / pulls for w, g in zip(logits, grad, strict=True)]
            avg_reward = sum(returns) / pulls
            baseline = 0.9 * baseline + 0.1 * avg_reward
            summary.train = _report(emitter, "train", returns, config, step, epoch)
            if step % config.status_every == 0:
                emitter.emit_status(
                    JobState.RUNNING, step=step, epoch=epoch, phase="train", total=config.steps
                )
            if step % config.eval_every == 0 or step == config.steps:
                summary.eval = _evaluate(emitter, env, logits, config, step, epoch)
                url = _checkpoint(checkpoint_dir, step, epoch, logits, baseline, config)
                emitter.emit_artifact("checkpoint", url, step=step, epoch=epoch)
                emitter.emit_log(f"saved checkpoint step={step} to {url}")
                summary.checkpoints.append(url)
                if step < config.steps:
                    emitter.emit_status(JobState.RUNNING, step=step, epoch=epoch, phase="train")
            if config.step_delay_s:
                time.sleep(config.step_delay_s)
    except KeyboardInterrupt:
        emitter.emit_status(JobState.CANCELED, "interrupted", step=step, epoch=epoch)
        raise
    except Exception as exc:
        emitter.emit_status(JobState.FAILED, f"{type(exc).__name__}: {exc}", step=step, epoch=epoch)
        raise
    summary.steps, summary.epochs = step, epoch + 1
    emitter.emit_status(
        JobState.SUCCEEDED,
        f"trained {step} steps; eval avg_reward {summary.eval['avg_reward']:.3f}",
        step=step,
        epoch=epoch,
        phase="done",
    )
    return summary


def _report(
    emitter: Emitter,
    split: str,
    returns: list[float],
    config: RLConfig,
    step: int,
    epoch: int,
) -> dict[str, float]:
    values = {
        "avg_reward": sum(returns) / (len(returns) * config.horizon),
        "return": sum(returns) / len(returns),
        "success_rate": sum(r >= config.success_return for r in returns) / len(returns),
    }
    for name, value in values.items():
        emitter.emit_metric(
            name, value, step=step, epoch=epoch, split=split, type=f"rl.{split}.metric"
        )
    return values


def _evaluate(
    emitter: Emitter, env: Bandit, logits: list[float], config: RLConfig, step: int, epoch: int
) -> dict[str, float]:
    """The greedy policy on the same held-out seeds at every evaluation."""
    emitter.emit_status(JobState.RUNNING, step=step, epoch=epoch, phase="eval")
    rng = random.Random(config.seed + 10_000)
    best = max(range(config.arms), key=lambda a: logits[a])
    returns = [
        sum(env.pull(best, rng) for _ in range(config.horizon)) for _ in range(config.eval_episodes)
    ]
    return _report(emitter, "eval", returns, config, step, epoch)


def _checkpoint(
    directory: Path,
    step: int,
    epoch: int,
    logits: list[float],
    baseline: float,
    config: RLConfig,
) -> str:
    state = {"step": step, "epoch": epoch, "logits": logits, "baseline": baseline}
    return write_checkpoint(directory, f"rl-step{step:05d}", {**state, "config": asdict(config)})
