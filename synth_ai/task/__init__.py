"""The task-app framework: write one `TaskAppConfig`, get a contract-complete service."""

from .auth import configured_keys
from .client import SyncTaskAppClient, TaskAppClient, TaskAppClientError
from .config import RolloutExecutor, TaskAppConfig
from .conformance import CheckResult, ConformanceReport, check_conformance
from .contracts import (
    CONTRACT_VERSION,
    DatasetInfo,
    InferenceInfo,
    LimitsInfo,
    RolloutEnvSpec,
    RolloutMetrics,
    RolloutMode,
    RolloutPolicySpec,
    RolloutRecordConfig,
    RolloutRequest,
    RolloutResponse,
    RolloutSafetyConfig,
    RolloutStep,
    RolloutTrajectory,
    RubricCriterion,
    RubricInfo,
    RubricSection,
    TaskDescriptor,
    TaskInfo,
)
from .correlation import (
    extract_trace_correlation_id,
    normalize_inference_url,
    stamp_inference_url,
)
from .credentials import DEFAULT_CREDENTIALS, CredentialMap
from .datasets import TaskDatasetRegistry
from .errors import InfrastructureError, TaskAppError, invalid_request
from .inference import InferenceError, chat_completion
from .registry import (
    TaskAppEntry,
    get_task_app,
    list_task_apps,
    register_task_app,
)
from .rollout import RolloutContext
from .server import create_task_app
from .serving import run_task_app, serve_in_background
from .validators import validate_rollout_response_for_rl

__all__ = [
    "CONTRACT_VERSION",
    "DEFAULT_CREDENTIALS",
    "CheckResult",
    "ConformanceReport",
    "CredentialMap",
    "DatasetInfo",
    "InferenceError",
    "InferenceInfo",
    "InfrastructureError",
    "LimitsInfo",
    "RolloutContext",
    "RolloutEnvSpec",
    "RolloutExecutor",
    "RolloutMetrics",
    "RolloutMode",
    "RolloutPolicySpec",
    "RolloutRecordConfig",
    "RolloutRequest",
    "RolloutResponse",
    "RolloutSafetyConfig",
    "RolloutStep",
    "RolloutTrajectory",
    "RubricCriterion",
    "RubricInfo",
    "RubricSection",
    "SyncTaskAppClient",
    "TaskAppClient",
    "TaskAppClientError",
    "TaskAppConfig",
    "TaskAppEntry",
    "TaskAppError",
    "TaskDatasetRegistry",
    "TaskDescriptor",
    "TaskInfo",
    "chat_completion",
    "check_conformance",
    "configured_keys",
    "create_task_app",
    "extract_trace_correlation_id",
    "get_task_app",
    "invalid_request",
    "list_task_apps",
    "normalize_inference_url",
    "register_task_app",
    "run_task_app",
    "serve_in_background",
    "stamp_inference_url",
    "validate_rollout_response_for_rl",
]
