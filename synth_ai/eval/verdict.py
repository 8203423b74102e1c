"""What an evaluation's exit code says, so that CI can gate on it (README "Evaluate")."""

from __future__ import annotations

from dataclasses import dataclass

from .models import EvalSummary

PASSED = 0
THRESHOLD_FAILED = 1
USAGE = 2
UNREACHABLE = 3
INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Verdict:
    code: int
    reason: str


def verdict(
    summary: EvalSummary, *, fail_under: float | None = None, max_error_rate: float | None = 0.0
) -> Verdict:
    """0 when the seeds that failed are within `max_error_rate` of all seeds and the mean
    reward meets `fail_under` (when given); 1 otherwise; 130 for a run cut short by Ctrl-C."""
    if summary.canceled:
        return Verdict(INTERRUPTED, f"interrupted after {summary.completed} of {summary.total}")
    rate = summary.failed / summary.total if summary.total else 0.0
    if max_error_rate is not None and rate > max_error_rate:
        return Verdict(
            THRESHOLD_FAILED,
            f"{summary.failed} of {summary.total} seeds failed "
            f"(error rate {rate:.2f} > --max-error-rate {max_error_rate:g})",
        )
    if fail_under is not None and (summary.mean_reward is None or summary.mean_reward < fail_under):
        mean = "none" if summary.mean_reward is None else f"{summary.mean_reward:.3f}"
        return Verdict(THRESHOLD_FAILED, f"mean reward {mean} < --fail-under {fail_under:g}")
    return Verdict(PASSED, "passed")
