"""Local evaluation jobs: seeds against a task app, with events, results and a summary."""

from .job_kind import EvalJobKind
from .models import EvalConfig, EvalSummary, SeedResult
from .runner import EvalCheckFailed, EvalRun, check_task_app, read_results, run_eval
from .seeds import parse_seeds

__all__ = [
    "EvalCheckFailed",
    "EvalConfig",
    "EvalJobKind",
    "EvalRun",
    "EvalSummary",
    "SeedResult",
    "check_task_app",
    "parse_seeds",
    "read_results",
    "run_eval",
]
