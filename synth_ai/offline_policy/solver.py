"""How the offline policy reads a math problem: arithmetic expressions and a few phrasings.

It understands `Compute <expression>.` / `What is <expression>?` with + - * / and parentheses,
the word-problem phrasings of the reference math task app, and `Say <number>` (the README's
five-minute app). Nothing else: it is a stand-in.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from fractions import Fraction

_EXPRESSION = re.compile(r"(?:Compute|What is)\s+([-+*/()\d\s]+?)\s*[.?]")
_SAY = re.compile(r"\bSay (-?\d+)\b")
_WORD_RULES: list[tuple[re.Pattern[str], Callable[..., Fraction]]] = [
    (
        re.compile(r"has (\d+) \w+\. \w+ buys (\d+) more and then gives away (\d+)"),
        lambda a, b, c: a + b - c,
    ),
    (re.compile(r"buys (\d+) packs of \w+ with (\d+) in each pack"), lambda a, b: a * b),
    (re.compile(r"has (\d+) \w+ and shares them equally among (\d+) friends"), lambda a, b: a / b),
    (
        re.compile(r"A box holds (\d+) \w+\. \w+ fills (\d+) boxes and then uses (\d+)"),
        lambda a, b, c: a * b - c,
    ),
]
_OPERATORS: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def evaluate(expression: str) -> Fraction:
    """Exact value of an arithmetic expression of integers; `ValueError` for anything else."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not plain arithmetic: {ast.dump(node)[:60]}")

    try:
        return walk(ast.parse(expression.strip(), mode="eval"))
    except (SyntaxError, ZeroDivisionError) as exc:
        raise ValueError(str(exc)) from exc


def solve(text: str) -> Fraction | None:
    """The answer to the problem stated somewhere in `text`, or None if it cannot read one."""
    for pattern, rule in _WORD_RULES:
        if match := pattern.search(text):
            return rule(*(Fraction(int(group)) for group in match.groups()))
    if match := _EXPRESSION.search(text):
        try:
            return evaluate(match.group(1))
        except ValueError:
            return None
    if match := _SAY.search(text):
        return Fraction(int(match.group(1)))
    return None


def format_answer(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )
