"""OFFLINE STAND-IN for GEPA's reflection model: proposes an instruction from the feedback given.

Asked for the model `offline-reflection`, or sent gepa's default reflection prompt (its opening
sentence, whatever the model name), the offline server answers as a reflection model would. It
reads the prompt gepa's `InstructionProposalSignature` sends: the current instruction in the
first ``` block, then the examples (`# Example N`) with the assistant's responses and feedback.

- An example failed when its text names a failure reason the math app reports (`wrong_answer`,
  `unparseable_answer`, `blank_answer`, `no_tool_call`...) or says `correct: false`.
- Its kind is the `kind: <kind>` its feedback names, else the kind of the problem it shows.
- The proposal is the current instruction plus, for each failed kind, that kind's lesson hint
  (`lessons.py`) unless the instruction already teaches it; in a ``` block, as gepa asks.
- No failure, or nothing to add: the current instruction, unchanged.

It is stateless: it sees only the request, so never a test pool. It is not a model.
"""

from __future__ import annotations

import re

from .lessons import LESSON_FOR, LESSONS, problem_kind

REFLECTION_MODEL = "offline-reflection"
GEPA_OPENING = "I provided an assistant with the following instructions to perform a task"
"""The first sentence of gepa 0.1.4's default reflection prompt."""

_FENCE = re.compile(r"```[^\n]*\n(?P<body>.*?)\n?```", re.DOTALL)
_EXAMPLE = re.compile(r"^#\s*Example\s+\d+\s*$", re.MULTILINE)
_FAILED = re.compile(
    r"\b(?:wrong_answer|unparseable_answer|blank_answer|no_tool_call|wrong_tool_call|"
    r"invalid_tool_arguments)\b|\bcorrect\W{0,12}false\b",
    re.IGNORECASE,
)
_KIND = re.compile(
    r"\bkind\W{0,12}(" + "|".join(lesson.kind for lesson in LESSONS) + r")\b", re.IGNORECASE
)


class NotAReflectionRequest(ValueError):
    """The text has no ``` block holding the current instruction."""


def is_reflection_request(model: object, text: str) -> bool:
    return model == REFLECTION_MODEL or GEPA_OPENING in text


def failed_kinds(examples: str) -> list[str]:
    """The kinds of the failed examples, in lesson order, each once."""
    found: set[str] = set()
    for example in _EXAMPLE.split(examples):
        if not _FAILED.search(example):
            continue
        named = _KIND.search(example)
        kind = named[1].lower() if named else problem_kind(example)
        if kind is not None:
            found.add(kind)
    return [lesson.kind for lesson in LESSONS if lesson.kind in found]


def propose(text: str) -> str:
    """The new instruction for a reflection request (see the module doc)."""
    fence = _FENCE.search(text)
    if fence is None:
        raise NotAReflectionRequest(
            "the offline reflection stand-in reads the current instruction from the first "
            "``` block of gepa's reflection prompt, and found none"
        )
    current = fence["body"]
    new = current
    for kind in failed_kinds(text[fence.end() :]):
        lesson = LESSON_FOR[kind]
        if not lesson.taught_by(new):
            new = f"{new.rstrip()}\n{lesson.hint}"
    return new


def reflection_answer(text: str) -> str:
    """The reply text: the proposal in a ``` block."""
    return f"```\n{propose(text)}\n```"
