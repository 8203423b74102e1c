"""The offline stand-in for an LLM vendor, used by the demo and the tests only.

One server answers three model names: the plain solver (`offline-policy`, any other name), the
prompt-sensitive policy (`offline-prompt-sensitive`) and the reflection model
(`offline-reflection`); see `server.py`.
"""

from .lessons import LESSONS, PROMPT_SENSITIVE_MODEL
from .reflection import REFLECTION_MODEL
from .server import OFFLINE_MODEL, OfflinePolicy, create_offline_policy_app
from .solver import evaluate, solve

__all__ = [
    "LESSONS",
    "OFFLINE_MODEL",
    "PROMPT_SENSITIVE_MODEL",
    "REFLECTION_MODEL",
    "OfflinePolicy",
    "create_offline_policy_app",
    "evaluate",
    "solve",
]
