"""OFFLINE STAND-IN behaviour: a policy whose accuracy depends on what its prompt tells it.

No LLM is reachable where the tests and the README's optimize example run, so prompt
optimization needs a policy that a better prompt really improves. Asked for the model
`offline-prompt-sensitive`, the offline policy solves each problem as it always does (it never
sees an answer key), then makes one documented, deterministic mistake per problem kind unless
its prompt (the text of every message) carries that kind's trigger phrase (case-insensitive):

- fractions (`Compute a/b + c/d.`): answers an approximate decimal (`≈0.58` for 7/12), which
  the grader cannot read, unless told "exact fraction";
- word problems (`How many apples ...?`): answers with the unit (`17 apples`), which the grader
  cannot read, unless told "bare number".

Arithmetic problems are always answered right. Each lesson's `hint` is the sentence the offline
reflection stand-in adds for that kind (`reflection.py`); it contains the trigger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

PROMPT_SENSITIVE_MODEL = "offline-prompt-sensitive"

_FRACTIONS = re.compile(r"Compute -?\d+/\d+ [-+*] -?\d+/\d+\.")
_WORD = re.compile(r"\bHow many (\w+)")


@dataclass(frozen=True, slots=True)
class Lesson:
    kind: str
    trigger: str
    hint: str

    def taught_by(self, prompt: str) -> bool:
        return self.trigger in prompt.lower()


LESSONS = (
    Lesson(
        "fractions",
        "exact fraction",
        "For fraction problems, submit the exact fraction in lowest terms; never round to a "
        "decimal.",
    ),
    Lesson(
        "word",
        "bare number",
        "For word problems, submit the bare number only, without units or words.",
    ),
)
LESSON_FOR = {lesson.kind: lesson for lesson in LESSONS}


def problem_kind(problem: str) -> str | None:
    """The kind of a math-app problem, read from its text (None for arithmetic and the rest)."""
    if _FRACTIONS.search(problem):
        return "fractions"
    if _WORD.search(problem):
        return "word"
    return None


def as_prompted(answer: str, problem: str, prompt: str) -> str:
    """The answer the prompt-sensitive stand-in gives: `answer`, or its kind's mistake when
    the prompt does not teach that kind's lesson."""
    kind = problem_kind(problem)
    if not answer or kind is None or LESSON_FOR[kind].taught_by(prompt):
        return answer
    if kind == "fractions":
        return f"\u2248{float(Fraction(answer)):.2f}"
    unit = _WORD.search(problem)
    return f"{answer} {unit[1] if unit else 'items'}"
