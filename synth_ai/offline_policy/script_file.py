"""Reading a policy script from a file, for `synth-ai policy serve --script FILE`.

The file defines `policy(messages, tools)` (answering text, a `ToolCall`, a list of them, or
None when it cannot answer), or `RULES`, a list of `Rule`s (or `(pattern, reply)` pairs).
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from .scripted import Rule, Script


class ScriptFileError(ValueError):
    """The file cannot be read as a policy script; the message is one line."""


def load_script(path: Path) -> Script | list[Rule]:
    from synth_ai.task.references import load_failure

    if not path.is_file():
        raise ScriptFileError(f"no file {str(path)!r}")
    try:
        names = runpy.run_path(str(path))
    except Exception as exc:
        raise ScriptFileError(str(load_failure(exc, path.resolve()))) from exc
    if callable(names.get("policy")):
        script: Script = names["policy"]
        return script
    rules = names.get("RULES")
    if isinstance(rules, (list, tuple)) and rules:
        return [as_rule(rule, path) for rule in rules]
    raise ScriptFileError(
        f"{path} defines neither policy(messages, tools) nor a non-empty RULES list"
    )


def as_rule(value: Any, path: Path) -> Rule:
    if isinstance(value, Rule):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return Rule(value[0], value[1])
    raise ScriptFileError(f"{path}: RULES holds {value!r:.60}, not a Rule or (pattern, reply)")
