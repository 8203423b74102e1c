"""The offline stand-in for an LLM vendor, used by the demo and the tests only.

One server answers three model names: the plain solver (`offline-policy`, any other name), the
prompt-sensitive policy (`offline-prompt-sensitive`) and the reflection model
(`offline-reflection`); see `server.py`. The scripted stand-in (`scripted.py`) answers what
the author's script says, for any app. A stand-in that cannot answer says so (`tally.py`).
"""

from .lessons import LESSONS, PROMPT_SENSITIVE_MODEL
from .reflection import REFLECTION_MODEL
from .scripted import (
    SCRIPTED_MODEL,
    Rule,
    ScriptedCall,
    ScriptedPolicy,
    ToolCall,
    create_scripted_policy_app,
)
from .server import OFFLINE_MODEL, OfflinePolicy, create_offline_policy_app
from .solver import evaluate, solve
from .tally import UNANSWERED, Count, count_unanswered

__all__ = [
    "LESSONS",
    "OFFLINE_MODEL",
    "PROMPT_SENSITIVE_MODEL",
    "REFLECTION_MODEL",
    "SCRIPTED_MODEL",
    "UNANSWERED",
    "Count",
    "OfflinePolicy",
    "Rule",
    "ScriptedCall",
    "ScriptedPolicy",
    "ToolCall",
    "count_unanswered",
    "create_offline_policy_app",
    "create_scripted_policy_app",
    "evaluate",
    "solve",
]
