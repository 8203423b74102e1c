"""The task-app framework: write one `TaskAppConfig`, get a contract-complete service.

Names load on first use (PEP 562): an app pays at start only for what it touches, so a
server never imports the client, the conformance checker or uvicorn's runner unless it uses
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synth_ai.lazy_exports import lazy_exports

_EXPORTS = {
    "auth": (
        "configured_keys",
        "is_api_key_header_authorized",
        "normalize_environment_api_key",
        "require_api_key_dependency",
    ),
    "answers": ("TaskAppClientError",),
    "client": ("TaskAppClient",),
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
    "datasets": ("TaskDatasetRegistry", "TaskDatasetSpec"),
    "errors": (
        "InfrastructureError",
        "TaskAppError",
        "error_payload",
        "http_exception",
        "invalid_request",
        "json_error_response",
    ),
    "inference": ("InferenceError", "chat_completion"),
    "proxy": (
        "ProxyConfig",
        "extract_message_text",
        "inject_system_hint",
        "parse_tool_call_from_text",
        "prepare_for_groq",
        "prepare_for_openai",
        "synthesize_tool_call_if_missing",
    ),
    "references": ("get_task_app",),
    "registry": ("TaskAppEntry", "list_task_apps", "register_task_app"),
    "rollout": ("RolloutContext",),
    "rubrics": (
        "Criterion",
        "Rubric",
        "RubricBundle",
        "blend_rubrics",
        "load_rubric",
        "score_events_against_rubric",
        "score_outcome_against_rubric",
    ),
    "application": ("create_task_app",),
    "serving": ("run_task_app", "serve_in_background"),
    "validators": ("validate_rollout_response_for_rl",),
    "vendors": ("get_groq_key_or_503", "get_openai_key_or_503", "normalize_vendor_keys"),
}
__all__ = [
    "CONTRACT_VERSION",
    "DEFAULT_CREDENTIALS",
    "CheckResult",
    "ConformanceReport",
    "CredentialMap",
    "Criterion",
    "DatasetInfo",
    "InferenceError",
    "InferenceInfo",
    "InfrastructureError",
    "LimitsInfo",
    "ProxyConfig",
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
    "Rubric",
    "RubricBundle",
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
    "TaskDatasetSpec",
    "TaskDescriptor",
    "TaskInfo",
    "blend_rubrics",
    "chat_completion",
    "check_conformance",
    "configured_keys",
    "create_task_app",
    "error_payload",
    "extract_message_text",
    "extract_trace_correlation_id",
    "get_groq_key_or_503",
    "get_openai_key_or_503",
    "get_task_app",
    "http_exception",
    "inject_system_hint",
    "invalid_request",
    "is_api_key_header_authorized",
    "json_error_response",
    "list_task_apps",
    "load_rubric",
    "normalize_environment_api_key",
    "normalize_inference_url",
    "normalize_vendor_keys",
    "parse_tool_call_from_text",
    "prepare_for_groq",
    "prepare_for_openai",
    "register_task_app",
    "require_api_key_dependency",
    "run_task_app",
    "score_events_against_rubric",
    "score_outcome_against_rubric",
    "serve_in_background",
    "stamp_inference_url",
    "synthesize_tool_call_if_missing",
    "validate_rollout_response_for_rl",
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


if TYPE_CHECKING:
    from .answers import TaskAppClientError
    from .application import create_task_app
    from .auth import (
        configured_keys,
        is_api_key_header_authorized,
        normalize_environment_api_key,
        require_api_key_dependency,
    )
    from .client import TaskAppClient
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
    from .datasets import TaskDatasetRegistry, TaskDatasetSpec
    from .errors import (
        InfrastructureError,
        TaskAppError,
        error_payload,
        http_exception,
        invalid_request,
        json_error_response,
    )
    from .inference import InferenceError, chat_completion
    from .proxy import (
        ProxyConfig,
        extract_message_text,
        inject_system_hint,
        parse_tool_call_from_text,
        prepare_for_groq,
        prepare_for_openai,
        synthesize_tool_call_if_missing,
    )
    from .references import get_task_app
    from .registry import TaskAppEntry, list_task_apps, register_task_app
    from .rollout import RolloutContext
    from .rubrics import (
        Criterion,
        Rubric,
        RubricBundle,
        blend_rubrics,
        load_rubric,
        score_events_against_rubric,
        score_outcome_against_rubric,
    )
    from .serving import run_task_app, serve_in_background
    from .sync_client import SyncTaskAppClient
    from .validators import validate_rollout_response_for_rl
    from .vendors import get_groq_key_or_503, get_openai_key_or_503, normalize_vendor_keys
