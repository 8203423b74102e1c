"""The task-app framework: write one `TaskAppConfig`, get a contract-complete service.

Names load on first use (PEP 562): an app pays at start only for what it touches, so a
server never imports the client, the conformance checker or uvicorn's runner unless it uses
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synth_ai.lazy_exports import lazy_exports

_EXPORTS = {
    "auth": ("configured_keys",),
    "client": ("TaskAppClient", "TaskAppClientError"),
    "sync_client": ("SyncTaskAppClient",),
    "config": ("RolloutExecutor", "TaskAppConfig"),
    "conformance": ("CheckResult", "ConformanceReport", "check_conformance"),
    "contracts": (
        "CONTRACT_VERSION",
        "DatasetInfo",
        "InferenceInfo",
        "LimitsInfo",
        "RolloutEnvSpec",
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
        "TaskDescriptor",
        "TaskInfo",
    ),
    "correlation": (
        "extract_trace_correlation_id",
        "normalize_inference_url",
        "stamp_inference_url",
    ),
    "credentials": ("DEFAULT_CREDENTIALS", "CredentialMap"),
    "datasets": ("TaskDatasetRegistry",),
    "errors": ("InfrastructureError", "TaskAppError", "invalid_request"),
    "inference": ("InferenceError", "chat_completion"),
    "registry": ("TaskAppEntry", "get_task_app", "list_task_apps", "register_task_app"),
    "rollout": ("RolloutContext",),
    "server": ("create_task_app",),
    "serving": ("run_task_app", "serve_in_background"),
    "validators": ("validate_rollout_response_for_rl",),
}
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


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


if TYPE_CHECKING:
    from .auth import configured_keys
    from .client import TaskAppClient, TaskAppClientError
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
    from .sync_client import SyncTaskAppClient
    from .validators import validate_rollout_response_for_rl
