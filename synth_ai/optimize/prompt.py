"""The initial prompt an optimizer starts from, and how candidates map onto an app's messages.

The published prompt-learning config describes the prompt the app sends as messages
`{role, pattern, order}` whose patterns hold `{name}` placeholders for the declared wildcards
(`query = "REQUIRED"`). A candidate is `dict[str, str]`: one text per component, where a
component is one message of the initial prompt (`component_names`). The interceptor `match`es
the app's actual messages against the patterns to recover the wildcard values, then `render`s
the candidate with them.

Matching never guesses. Patterns are split into literal text and placeholders, and the literal
text is located with plain string search (no regex: a pattern's `.*+?[` are just text, and a
hostile message cannot make matching backtrack). A message that does not fit, or fits in more
than one way, is a `PromptMismatch` naming the message and its role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REQUIRED = "REQUIRED"
"""The wildcard value meaning: the app must supply it (no default)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ANY_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_WILDCARDS = 64


class PromptMismatch(ValueError):
    """The app's messages do not fit the initial prompt; `index` and `role` name the message."""

    def __init__(self, index: int, role: str | None, reason: str) -> None:
        where = f"message {index}" + (f" ({role})" if role else "")
        super().__init__(f"{where}: {reason}")
        self.index = index
        self.role = role
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PromptMessage:
    role: str
    pattern: str
    order: int = 0


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A pattern as alternating literals and placeholders: literals[i] precedes names[i]."""

    literals: tuple[str, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class InitialPrompt:
    """The prompt the app is expected to send: messages in `order` (ties keep list order).

    Raises ValueError naming the field at fault when a message or wildcard is malformed.
    """

    messages: Sequence[PromptMessage]
    wildcards: Mapping[str, str] = field(default_factory=dict)
    _parsed: tuple[_Parsed, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wildcards = dict(self.wildcards or {})
        if not self.messages:
            raise ValueError("initial_prompt.messages: give at least one message")
        if len(wildcards) > MAX_WILDCARDS:
            raise ValueError(f"initial_prompt.wildcards: at most {MAX_WILDCARDS} wildcards")
        for name, value in wildcards.items():
            if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"initial_prompt.wildcards: {name!r} is not a name like query")
            if not isinstance(value, str):
                raise ValueError(f"initial_prompt.wildcards.{name}: give a string")
        for index, message in enumerate(self.messages):
            where = f"initial_prompt.messages[{index}]"
            if not isinstance(message, PromptMessage):
                raise ValueError(f"{where}: give a PromptMessage")
            if not isinstance(message.role, str) or not message.role:
                raise ValueError(f"{where}.role: give a role")
            if isinstance(message.order, bool) or not isinstance(message.order, int):
                raise ValueError(f"{where}.order: give an integer")
        positions = sorted(range(len(self.messages)), key=lambda i: self.messages[i].order)
        ordered = tuple(self.messages[i] for i in positions)
        parsed = tuple(
            _parse(self.messages[i].pattern, wildcards, where=f"initial_prompt.messages[{i}]")
            for i in positions
        )
        object.__setattr__(self, "messages", ordered)
        object.__setattr__(self, "wildcards", wildcards)
        object.__setattr__(self, "_parsed", parsed)

    def component_names(self) -> list[str]:
        """One name per message, in order: its role when that role occurs once in the prompt,
        else `role_N` (N counting that role's messages from 1). Stable for a given prompt."""
        roles = [m.role for m in self.messages]
        seen: dict[str, int] = {}
        names = []
        for role in roles:
            seen[role] = seen.get(role, 0) + 1
            names.append(role if roles.count(role) == 1 else f"{role}_{seen[role]}")
        return names

    def seed_candidate(self) -> dict[str, str]:
        """The initial prompt as a candidate: each component's text is its pattern."""
        return dict(zip(self.component_names(), (m.pattern for m in self.messages), strict=True))

    def check_candidate(self, candidate: Mapping[str, str]) -> None:
        """ValueError unless `candidate` names exactly this prompt's components, with text."""
        expected = self.component_names()
        missing = [name for name in expected if name not in candidate]
        extra = [name for name in candidate if name not in expected]
        if missing or extra:
            raise ValueError(
                f"a candidate names the components {', '.join(expected)}; "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unknown {', '.join(map(repr, extra))}" if extra else "")
            )
        for name in expected:
            if not isinstance(candidate[name], str):
                raise ValueError(f"candidate component {name!r} must be text")


def _placeholder(names: frozenset[str]) -> re.Pattern[str] | None:
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(r"\{(" + alternatives + r")\}")


def _parse(pattern: str, wildcards: Mapping[str, str], *, where: str) -> _Parsed:
    if not isinstance(pattern, str):
        raise ValueError(f"{where}.pattern: give text")
    placeholder = _placeholder(frozenset(wildcards))
    pieces = placeholder.split(pattern) if placeholder else [pattern]
    literals, names = tuple(pieces[0::2]), tuple(pieces[1::2])
    for i in range(1, len(names)):
        if literals[i] == "":
            raise ValueError(
                f"{where}.pattern: {{{names[i - 1]}}}{{{names[i]}}} touch; separate them by text, "
                "or no message could tell where one ends"
            )
    return _Parsed(literals, names)


def _text_of(message: Any) -> str | None:
    """A message's text: a string, or text-only content parts joined; None for anything else."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    return None


def _locate(parsed: _Parsed, text: str, *, leftmost: bool) -> list[int] | None:
    """Start offsets of each literal in `text` (first at 0, last at the end), or None.

    Leftmost picks each middle literal as early as it can go, rightmost as late: a text fits
    the pattern in exactly one way when both agree.
    """
    literals = parsed.literals
    first, last = literals[0], literals[-1]
    if len(literals) == 1:
        return [0] if text == first else None
    if len(text) < len(first) + len(last) or not text.startswith(first):
        return None
    if not text.endswith(last):
        return None
    end = len(text) - len(last)
    starts = [0] + [0] * (len(literals) - 2) + [end]
    if leftmost:
        cursor = len(first)
        for i in range(1, len(literals) - 1):
            found = text.find(literals[i], cursor, end)
            if found < 0:
                return None
            starts[i] = found
            cursor = found + len(literals[i])
        return starts if cursor <= end else None
    cursor = end
    for i in range(len(literals) - 2, 0, -1):
        found = text.rfind(literals[i], len(first), cursor)
        if found < 0:
            return None
        starts[i] = found
        cursor = found
    return starts if cursor >= len(first) else None


def _match_one(parsed: _Parsed, text: str, index: int, role: str) -> list[tuple[str, str]]:
    left = _locate(parsed, text, leftmost=True)
    if left is None:
        raise PromptMismatch(index, role, _why_not(parsed, text))
    if len(parsed.names) > 1 and _locate(parsed, text, leftmost=False) != left:
        raise PromptMismatch(
            index,
            role,
            "the text fits the pattern in more than one way (a wildcard's value contains the "
            "text that separates it from the next); not guessing which",
        )
    values = []
    for i, name in enumerate(parsed.names):
        start = left[i] + len(parsed.literals[i])
        values.append((name, text[start : left[i + 1]]))
    return values


def _why_not(parsed: _Parsed, text: str) -> str:
    undeclared = sorted(
        {m for lit in parsed.literals for m in _ANY_PLACEHOLDER.findall(lit)} - set(parsed.names)
    )
    hint = (
        f" (the pattern's {', '.join('{' + n + '}' for n in undeclared)} is not a declared "
        "wildcard, so it is matched as literal text)"
        if undeclared
        else ""
    )
    return f"the text does not fit the pattern{hint}"


def match(initial: InitialPrompt, messages: Sequence[Any]) -> dict[str, str]:
    """The wildcard values the app's messages carry; `PromptMismatch` when they do not fit.

    The app's messages must begin with the initial prompt's, role for role; what follows them
    (the rest of a multi-turn conversation) is not the prompt and is not matched. A wildcard
    used twice must carry the same value both times.
    """
    values: dict[str, str] = {}
    for index, expected in enumerate(initial.messages):
        if index >= len(messages):
            raise PromptMismatch(
                index, expected.role, f"missing: the app sent only {len(messages)} message(s)"
            )
        message = messages[index]
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role != expected.role:
            raise PromptMismatch(
                index,
                role if isinstance(role, str) else None,
                f"expected a {expected.role} message here",
            )
        text = _text_of(message)
        if text is None:
            raise PromptMismatch(index, role, "only text content can be matched")
        for name, value in _match_one(initial._parsed[index], text, index, role):
            if name in values and values[name] != value:
                raise PromptMismatch(
                    index, role, f"{{{name}}} differs from its value in an earlier message"
                )
            values[name] = value
    return values


def render(
    candidate: Mapping[str, str], initial: InitialPrompt, wildcards: Mapping[str, str]
) -> list[dict[str, str]]:
    """The candidate's messages, `{name}` placeholders filled in one pass.

    A value is inserted as is (its own braces are never filled in again); a placeholder whose
    wildcard has no value takes the declared default, and stays as written when that default
    is `REQUIRED`. Braces that name no wildcard are text.
    """
    values = {
        name: wildcards.get(name, default)
        for name, default in initial.wildcards.items()
        if name in wildcards or default != REQUIRED
    }
    placeholder = _placeholder(frozenset(values))
    messages = []
    for name, message in zip(initial.component_names(), initial.messages, strict=True):
        text = candidate[name]
        if placeholder is not None:
            text = placeholder.sub(lambda m: values[m.group(1)], text)
        messages.append({"role": message.role, "content": text})
    return messages


__all__ = [
    "REQUIRED",
    "InitialPrompt",
    "PromptMessage",
    "PromptMismatch",
    "match",
    "render",
]
