"""Wire models of the task-app contract (DESIGN.md 3.4).

Requests accept every published generation of the contract; responses are a superset of what
every generation's consumers read. Unknown keys are kept everywhere, so newer producers and
older consumers can talk through this framework without losing data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from typing_extensions import TypedDict

CONTRACT_VERSION = "3.0"

MAX_ID_CHARS = 256
"""Ids and names (`run_id`, `env.env_name`, `policy.config.model`...): long enough for any
real id, short enough that one request cannot bloat logs, traces and metric labels."""
MAX_TOKENS = 10_000_000
MAX_TEMPERATURE = 10.0
"""Vendors accept 0..2 (OpenAI) or 0..1 (Anthropic); 10 refuses nonsense, not vendors."""
MAX_TIMEOUT_S = 86_400.0
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Name = Annotated[str, Field(max_length=MAX_ID_CHARS)]
Seed = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
ModelName = Annotated[StrictStr, Field(max_length=MAX_ID_CHARS)]
Temperature = Annotated[StrictFloat, Field(ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False)]
TopP = Annotated[StrictFloat, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
TokenCount = Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS)]
TimeoutSeconds = Annotated[StrictFloat, Field(gt=0.0, le=MAX_TIMEOUT_S, allow_inf_nan=False)]


def new_list() -> list[Any]:
    """`default_factory=list`, as a Python function: pydantic reads each factory's signature,
    and for a builtin Python parses it from text with `tokenize` (about 3 ms of every start)."""
    return []


def new_dict() -> dict[str, Any]:
    """`default_factory=dict`, for the same reason as `new_list`."""
    return {}


class WireModel(BaseModel):
    """Base for every contract model: extra keys are accepted and carried through.

    Defaults that are models are made by the class itself (`default_factory=Model`): validating
    `{}` in pydantic-core takes about a quarter of the time `model_construct` spends in Python.
    """

    model_config = ConfigDict(extra="allow")


# --- TaskInfo ----------------------------------------------------------------------------------


class TaskDescriptor(WireModel):
    id: str
    name: str
    description: str | None = None
    version: str | None = None


class DatasetInfo(WireModel):
    id: str | None = None
    name: str | None = None
    version: str | None = None
    splits: list[str] = Field(default_factory=new_list)
    default_split: str | None = None
    description: str | None = None


class RubricCriterion(WireModel):
    id: str
    description: str
    weight: float = 1.0


class RubricSection(WireModel):
    name: str
    criteria: list[RubricCriterion] = Field(default_factory=new_list)


class RubricInfo(WireModel):
    outcome: RubricSection | None = None
    events: RubricSection | None = None


class InferenceInfo(WireModel):
    model: str | None = None
    inference_url: str | None = None


class LimitsInfo(WireModel):
    max_turns: int | None = None
    max_response_tokens: int | None = None
    timeout_seconds: float | None = None


class TaskInfo(WireModel):
    """What `/task_info?seed=N` answers. Older consumers require every non-optional field."""

    task: TaskDescriptor
    environment: str
    environments: list[str] = Field(default_factory=new_list)
    dataset: DatasetInfo = Field(default_factory=DatasetInfo)
    rubric: RubricInfo = Field(default_factory=RubricInfo)
    inference: InferenceInfo = Field(default_factory=InferenceInfo)
    limits: LimitsInfo = Field(default_factory=LimitsInfo)
    action_space: dict[str, Any] | None = None
    observation: dict[str, Any] | None = None
    capabilities: dict[str, Any] | None = None
    task_metadata: dict[str, Any] = Field(default_factory=new_dict)

    @model_validator(mode="after")
    def _environments_include_environment(self) -> TaskInfo:
        if self.environment not in self.environments:
            self.environments = [self.environment, *self.environments]
        return self

    def for_instance(self, **task_metadata: Any) -> TaskInfo:
        """A copy of this (base) TaskInfo describing one instance, e.g. one seed."""
        return self.model_copy(
            deep=True, update={"task_metadata": {**self.task_metadata, **task_metadata}}
        )


# --- Rollout request ---------------------------------------------------------------------------


class RolloutMode(StrEnum):
    RL = "rl"
    EVAL = "eval"


class RolloutEnvSpec(WireModel):
    env_id: Name | None = None
    env_name: Name | None = None
    config: dict[str, Any] = Field(default_factory=new_dict)
    seed: Seed | None = None


class RolloutPolicyConfig(TypedDict, total=False):
    """The conventional `policy.config` keys the framework and apps read, checked at the edge.

    JSON allows `NaN`, `Infinity` and `1e400` (read as inf); none of them, nor a string or a
    bool where a number belongs, may reach an executor or an inference call. Every other key
    is kept as sent.
    """

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    model: ModelName | None
    temperature: Temperature | None
    top_p: TopP | None
    max_tokens: TokenCount | None
    max_completion_tokens: TokenCount | None
    timeout_s: TimeoutSeconds | None


# A plain dict to executors (`config.get(...)` as before), validated as `RolloutPolicyConfig`:
# only those few keys are looked at, in pydantic-core, so the hot path stays cheap.
PolicyConfigDict = Annotated[
    dict[str, Any],
    GetPydanticSchema(lambda _type, handler: handler.generate_schema(RolloutPolicyConfig)),
]


class RolloutPolicySpec(WireModel):
    policy_id: Name | None = None
    policy_name: Name | None = None
    config: PolicyConfigDict = Field(default_factory=new_dict)


class RolloutRecordConfig(WireModel):
    trajectories: bool = True
    logprobs: bool = False
    value: bool = False
    return_trace: bool = False
    trace_format: Literal["compact", "full", "structured"] = "compact"


class RolloutSafetyConfig(WireModel):
    max_ops: int | None = Field(default=None, ge=0)
    max_time_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class RolloutRequest(WireModel):
    """A request for one rollout, in the shape of any contract generation.

    Older callers send `run_id` and `ops`; newer ones send `trace_correlation_id` and `mode`.
    At least one of the two ids is required; the other is filled in from it.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [{"required": ["run_id"]}, {"required": ["trace_correlation_id"]}]
        },
    )

    run_id: Id | None = None
    trace_correlation_id: Id | None = None
    env: RolloutEnvSpec = Field(default_factory=RolloutEnvSpec)
    policy: RolloutPolicySpec = Field(default_factory=RolloutPolicySpec)
    ops: list[str | dict[str, Any]] = Field(default_factory=new_list)
    record: RolloutRecordConfig = Field(default_factory=RolloutRecordConfig)
    on_done: str = "reset"
    safety: RolloutSafetyConfig = Field(default_factory=RolloutSafetyConfig)
    training_session_id: str | None = None
    synth_base_url: str | None = None
    mode: RolloutMode = RolloutMode.EVAL

    @model_validator(mode="after")
    def _fill_ids(self) -> RolloutRequest:
        if self.run_id is None and self.trace_correlation_id is None:
            raise ValueError("a rollout request needs run_id or trace_correlation_id")
        if self.run_id is None:
            self.run_id = self.trace_correlation_id
        elif self.trace_correlation_id is None:
            self.trace_correlation_id = self.run_id
        return self


# --- Rollout response --------------------------------------------------------------------------


class RolloutStep(WireModel):
    obs: Any = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=new_list)
    reward: float | None = None
    done: bool = False
    truncated: bool | None = None
    info: dict[str, Any] = Field(default_factory=new_dict)


class RolloutTrajectory(WireModel):
    env_id: str
    policy_id: str
    steps: list[RolloutStep] = Field(default_factory=new_list)
    final: dict[str, Any] | None = None
    length: int = 0
    inference_url: str | None = None
    decision_samples: list[dict[str, Any]] | None = None
    trace_correlation_id: str | None = None

    @model_validator(mode="after")
    def _length_defaults_to_steps(self) -> RolloutTrajectory:
        if self.length == 0:
            self.length = len(self.steps)
        return self


class RolloutMetrics(WireModel):
    """Rollout metrics under both the legacy and the new reward names, always equal."""

    episode_returns: list[float] = Field(default_factory=new_list)
    mean_return: float | None = None
    num_steps: int = 0
    num_episodes: int = 1
    outcome_score: float | None = None
    events_score: float | None = None
    outcome_reward: float | None = None
    details: dict[str, Any] = Field(default_factory=new_dict)

    @model_validator(mode="after")
    def _fill_reward_aliases(self) -> RolloutMetrics:
        returns = self.episode_returns
        outcome = self.outcome_score if self.outcome_score is not None else self.outcome_reward
        if outcome is None and returns:
            outcome = sum(returns) / len(returns)
        if self.mean_return is None:
            self.mean_return = sum(returns) / len(returns) if returns else outcome
        if not returns and outcome is not None:
            self.episode_returns = [outcome]
        self.outcome_score = self.outcome_reward = outcome
        return self


class RolloutResponse(WireModel):
    run_id: str | None = None
    trace_correlation_id: str | None = None
    trajectories: list[RolloutTrajectory] = Field(default_factory=new_list)
    branches: dict[str, Any] = Field(default_factory=new_dict)
    metrics: RolloutMetrics = Field(default_factory=RolloutMetrics)
    aborted: bool = False
    ops_executed: int = 0
    trace: dict[str, Any] | None = None
    inference_url: str | None = None
    pipeline_metadata: dict[str, Any] = Field(default_factory=new_dict)


# --- Errors ------------------------------------------------------------------------------------


class ErrorBody(WireModel):
    code: str
    message: str


class ErrorDetail(WireModel):
    error: ErrorBody


class ErrorEnvelope(WireModel):
    """The one shape of every error answer: `{"detail": {"error": {code, message, ...}}}`."""

    detail: ErrorDetail


def every_generation(body: dict[str, Any]) -> dict[str, Any]:
    """A rollout request every published generation of task apps accepts: both ids, `mode`
    (required by 0.2.x) and `ops` (required by 0.2.x, ignored by this framework) filled in when
    the caller left them out; nothing the caller gave is changed."""
    filled = dict(body)
    ids = [filled.get("run_id"), filled.get("trace_correlation_id")]
    known = next((value for value in ids if value), None)
    if known is not None:
        filled.setdefault("run_id", known)
        filled.setdefault("trace_correlation_id", known)
    filled.setdefault("mode", "eval")
    filled.setdefault("ops", list(DEFAULT_OPS))
    filled.setdefault("env", {})
    filled.setdefault("policy", {})
    return filled


DEFAULT_OPS = ("agent", "env")
"""One policy call and one environment step: what a single-turn rollout of 0.2.x runs."""
