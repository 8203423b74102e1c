"""The offline stand-in for an LLM vendor, used by the demo and the tests only."""

from .server import OFFLINE_MODEL, OfflinePolicy, create_offline_policy_app
from .solver import evaluate, solve

__all__ = ["OFFLINE_MODEL", "OfflinePolicy", "create_offline_policy_app", "evaluate", "solve"]
