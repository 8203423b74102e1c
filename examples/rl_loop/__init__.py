"""A toy RL loop that reports to a job: `python -m examples.rl_loop --jobs-server URL`."""

from .loop import Bandit, LoopSummary, RLConfig, run_rl

__all__ = ["Bandit", "LoopSummary", "RLConfig", "run_rl"]
