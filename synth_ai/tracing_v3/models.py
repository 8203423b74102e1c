"""The v3 session-trace data model: sessions of timesteps holding events and messages.

Everything serialises to JSON with ISO-8601 UTC datetimes and plain values (no `repr` strings),
so a trace written to the store and read back is equal to the one recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    return datetime.now(UTC)


UTCDatetime = Annotated[AwareDatetime, AfterValidator(lambda moment: moment.astimezone(UTC))]
"""A timezone-aware datetime, normalised to UTC so its ISO form always ends `+00:00`."""


class TraceModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class TimeRecord(TraceModel):
    event_time: float = Field(description="Unix seconds when it happened.")
    message_time: int | None = Field(default=None, description="Turn or message counter.")


class LLMUsage(TraceModel):
    """Token usage under one naming; built from OpenAI's or Anthropic's."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> LLMUsage:
        usage = usage or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            cache_read_input_tokens=prompt_details.get("cached_tokens"),
            reasoning_tokens=completion_details.get("reasoning_tokens"),
        )

    @classmethod
    def from_anthropic(cls, usage: dict[str, Any] | None) -> LLMUsage:
        usage = usage or {}
        input_tokens, output_tokens = usage.get("input_tokens"), usage.get("output_tokens")
        total = (
            input_tokens + output_tokens
            if input_tokens is not None and output_tokens is not None
            else None
        )
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total,
            cache_read_input_tokens=usage.get("cache_read_input_tokens"),
            cache_creation_input_tokens=usage.get("cache_creation_input_tokens"),
        )


class ToolCallSpec(TraceModel):
    id: str | None = None
    name: str
    arguments: str = "{}"
    """The arguments as the model produced them: a JSON string."""


class LLMMessage(TraceModel):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCallSpec] = Field(default_factory=list)

    @classmethod
    def from_openai(cls, message: dict[str, Any]) -> LLMMessage:
        """From an OpenAI chat message, whose tool calls nest name and arguments in `function`."""
        calls = [
            ToolCallSpec(
                id=call.get("id"),
                name=(call.get("function") or {}).get("name", ""),
                arguments=(call.get("function") or {}).get("arguments") or "{}",
            )
            for call in message.get("tool_calls") or []
        ]
        fields = {k: message.get(k) for k in ("content", "name", "tool_call_id")}
        return cls(role=message.get("role", "assistant"), tool_calls=calls, **fields)


class LLMCallRecord(TraceModel):
    """One call to a model: what was sent, what came back, how long and how much."""

    call_id: str
    api_type: str = "chat_completions"
    provider: str | None = None
    model_name: str
    started_at: UTCDatetime
    completed_at: UTCDatetime | None = None
    latency_ms: float | None = None
    request_messages: list[LLMMessage] = Field(default_factory=list)
    output_messages: list[LLMMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    usage: LLMUsage = Field(default_factory=LLMUsage)
    finish_reason: str | None = None
    request_params: dict[str, Any] = Field(default_factory=dict)


class BaseEvent(TraceModel):
    system_instance_id: str
    time_record: TimeRecord
    metadata: dict[str, Any] = Field(default_factory=dict)
    event_metadata: list[dict[str, Any]] | None = None


class LMCAISEvent(BaseEvent):
    """A language-model call made by the policy."""

    event_type: Literal["cais"] = "cais"
    model_name: str | None = None
    provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    span_id: str | None = None
    trace_id: str | None = None
    call_records: list[LLMCallRecord] = Field(default_factory=list)


class EnvironmentEvent(BaseEvent):
    """What the environment did: reward, termination, state before and after."""

    event_type: Literal["environment"] = "environment"
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    system_state_before: dict[str, Any] | None = None
    system_state_after: dict[str, Any] | None = None


class RuntimeEvent(BaseEvent):
    """Actions taken by the runtime (tool calls applied, ops executed)."""

    event_type: Literal["runtime"] = "runtime"
    actions: list[Any] = Field(default_factory=list)


TraceEvent = Annotated[
    LMCAISEvent | EnvironmentEvent | RuntimeEvent, Field(discriminator="event_type")
]


class SessionEventMessage(TraceModel):
    """A message on the Markov blanket between agent and environment; `message_type` is free."""

    content: Any
    message_type: str
    time_record: TimeRecord
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionTimeStep(TraceModel):
    step_id: str
    step_index: int
    timestamp: UTCDatetime = Field(default_factory=utc_now)
    turn_number: int | None = None
    events: list[TraceEvent] = Field(default_factory=list)
    markov_blanket_messages: list[SessionEventMessage] = Field(default_factory=list)
    step_metadata: dict[str, Any] = Field(default_factory=dict)
    completed_at: UTCDatetime | None = None


class OutcomeReward(TraceModel):
    total_reward: float
    achievements_count: int = 0
    total_steps: int = 0
    reward_metadata: dict[str, Any] = Field(default_factory=dict)


class EventReward(TraceModel):
    """A reward attached to one event (by its index in `event_history`)."""

    event_index: int
    reward_value: float
    reward_type: str | None = None
    key: str | None = None
    turn_number: int | None = None
    annotation: dict[str, Any] | None = None
    source: str | None = None


class SessionTrace(TraceModel):
    session_id: str
    created_at: UTCDatetime = Field(default_factory=utc_now)
    session_time_steps: list[SessionTimeStep] = Field(default_factory=list)
    event_history: list[TraceEvent] = Field(default_factory=list)
    markov_blanket_message_history: list[SessionEventMessage] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    outcome_reward: OutcomeReward | None = None
    event_rewards: list[EventReward] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def lm_events(self) -> list[LMCAISEvent]:
        return [event for event in self.event_history if isinstance(event, LMCAISEvent)]
