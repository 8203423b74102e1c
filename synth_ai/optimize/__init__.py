"""Prompt optimization: GEPA (the `gepa` library) against any task app, through an interceptor
keyed by the correlation id, run as a `prompt_learning` job."""

from .config import ConfigError, OptimizeConfig, load_config, parse_config
from .interceptor import Interceptor
from .job_kind import PromptLearningJob, PromptLearningJobKind, run_job
from .prompt import InitialPrompt, PromptMessage, PromptMismatch
from .run import OptimizeRun, PreflightFailed
from .spend import PRICES, TokenMeter

__all__ = [
    "PRICES",
    "ConfigError",
    "InitialPrompt",
    "Interceptor",
    "OptimizeConfig",
    "OptimizeRun",
    "PreflightFailed",
    "PromptLearningJob",
    "PromptLearningJobKind",
    "PromptMessage",
    "PromptMismatch",
    "TokenMeter",
    "load_config",
    "parse_config",
    "run_job",
]
