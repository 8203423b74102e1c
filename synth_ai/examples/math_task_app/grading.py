"""Grading by mathematical equivalence: `0.5`, `1/2`, `\\frac{1}{2}` and `$\\boxed{1/2}$` agree."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

TOOL_NAME = "math_submit"

REWARD_CORRECT = 1.0
REWARD_WRONG = 0.0
REWARD_BLANK = -0.5
REWARD_NO_TOOL = -1.0

_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_MIXED = re.compile(r"^(-?)(\d+)\s+(\d+)/(\d+)$")


@dataclass(frozen=True, slots=True)
class Grade:
    reward: float
    correct: bool
    reason: str
    submitted: str | None = None


def _unbox(text: str) -> str:
    """The content of the last `\\boxed{...}`, braces balanced; the text itself if none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return text
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return text[i + 1 :]


def parse_answer(text: str) -> Fraction | None:
    """A number from a free-form answer, or None when there is none to read."""
    s = text.strip()
    for left, right in _WRAPPERS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : len(s) - len(right)].strip()
    s = _unbox(s).strip()
    s = _FRAC.sub(r"(\1)/(\2)", s)
    if "=" in s:
        s = s.rsplit("=", 1)[1]
    s = s.strip().rstrip(".").strip().replace("\\!", "").replace("{", "").replace("}", "")
    s = s.replace("(", "").replace(")", "").replace("\u2212", "-")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if mixed := _MIXED.match(s):
        sign = -1 if mixed[1] else 1
        return sign * (int(mixed[2]) + Fraction(int(mixed[3]), int(mixed[4])))
    s = re.sub(r"\s*/\s*", "/", s)
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def grade_answer(answer: Any, expected: Fraction) -> Grade:
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return Grade(REWARD_BLANK, False, "blank_answer", None)
    submitted = str(answer)
    value = parse_answer(submitted)
    if value is None:
        return Grade(REWARD_WRONG, False, "unparseable_answer", submitted)
    if value == expected:
        return Grade(REWARD_CORRECT, True, "correct", submitted)
    return Grade(REWARD_WRONG, False, "wrong_answer", submitted)


def grade_completion(completion: dict[str, Any], expected: Fraction) -> Grade:
    """Grade a chat completion that should call `math_submit(answer)` exactly as told."""
    message = completion["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    if not calls:
        return Grade(REWARD_NO_TOOL, False, "no_tool_call")
    function = calls[0].get("function") or {}
    if function.get("name") != TOOL_NAME:
        return Grade(REWARD_NO_TOOL, False, "wrong_tool_call")
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except (TypeError, ValueError):
        return Grade(REWARD_NO_TOOL, False, "invalid_tool_arguments")
    if not isinstance(arguments, dict):
        return Grade(REWARD_NO_TOOL, False, "invalid_tool_arguments")
    return grade_answer(arguments.get("answer"), expected)
