"""A toy fine-tuning loop that reports to a job: `python -m examples.ft_loop --jobs-server URL`."""

from .loop import FTConfig, LoopSummary, make_data, run_ft

__all__ = ["FTConfig", "LoopSummary", "make_data", "run_ft"]
