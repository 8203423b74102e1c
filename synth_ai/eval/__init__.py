"""Local evaluation jobs: seeds against a task app, with events, results and a summary."""

from .job_kind import EvalJobKind
from .models import EvalConfig, EvalSummary, SeedResult
from .runner import EvalCheckFailed, EvalRun, preflight, read_results, run_eval
from .seeds import parse_seeds
from .verdict import Verdict, verdict

__all__ = [
    "EvalCheckFailed",
    "EvalConfig",
    "EvalJobKind",
    "EvalRun",
    "EvalSummary",
    "SeedResult",
    "Verdict",
    "parse_seeds",
    "preflight",
    "read_results",
    "run_eval",
    "verdict",
]
