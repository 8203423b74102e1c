"""The reference task app: seeded math problems, one forced tool call, graded by equivalence."""

from synth_ai.task import TaskAppEntry, register_task_app

from .app import MATH_SUBMIT_TOOL, build_config, render_prompt, rollout
from .grading import grade_answer, grade_completion, parse_answer
from .problems import SPLITS, MathProblem, generate_problem

ENTRY = register_task_app(
    TaskAppEntry(
        app_id="math",
        config_factory=build_config,
        description="Single-step math problems graded by equivalence.",
        aliases=("math-single-step",),
    )
)

__all__ = [
    "ENTRY",
    "MATH_SUBMIT_TOOL",
    "SPLITS",
    "MathProblem",
    "build_config",
    "generate_problem",
    "grade_answer",
    "grade_completion",
    "parse_answer",
    "render_prompt",
    "rollout",
]
