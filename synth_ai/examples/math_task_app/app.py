"""The math task app: one problem per seed, answered through a forced `math_submit` tool call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from synth_ai.task import (
    DatasetInfo,
    InferenceInfo,
    LimitsInfo,
    RolloutContext,
    RolloutMetrics,
    RolloutRequest,
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
    RubricCriterion,
    RubricInfo,
    RubricSection,
    TaskAppConfig,
    TaskDatasetRegistry,
    TaskDescriptor,
    TaskInfo,
    chat_completion,
    invalid_request,
)

from .grading import TOOL_NAME, Grade, grade_completion
from .problems import KINDS, SPLITS, MathProblem, generate_problem

APP_ID = "math"
DATASET_ID = "math-synthetic"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_INFERENCE_TIMEOUT_S = 60.0
MAX_CALLER_KEY_CHARS = 4096
SEED_RANGE = (-(2**63), 2**63 - 1)

DEFAULT_PROMPT = {
    "system": (
        "You are a careful mathematician. Solve the problem, then call the math_submit tool "
        "with only the final answer: an integer, or a fraction in lowest terms."
    ),
    "user": "Problem: {problem}",
}

MATH_SUBMIT_TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Submit the final answer to the math problem.",
        "parameters": {
            "type": "object",
            "properties": {"answer": {"type": "string", "description": "The final answer."}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    },
}

BASE_TASK_INFO = TaskInfo(
    task=TaskDescriptor(
        id=APP_ID,
        name="Math (single step)",
        description="Arithmetic, fraction and word problems; answer with one tool call.",
        version="1.0.0",
    ),
    environment="math",
    dataset=DatasetInfo(
        id=DATASET_ID,
        name="Synthetic math problems",
        version="1",
        splits=list(SPLITS),
        default_split="train",
        description="Generated from the seed; every seed names one problem for good.",
    ),
    rubric=RubricInfo(
        outcome=RubricSection(
            name="correctness",
            criteria=[
                RubricCriterion(
                    id="equivalent_answer",
                    description="The submitted answer equals the expected one mathematically.",
                )
            ],
        )
    ),
    inference=InferenceInfo(model=DEFAULT_MODEL),
    limits=LimitsInfo(max_turns=1, max_response_tokens=512, timeout_seconds=60),
    action_space={"type": "tool_call", "tools": [MATH_SUBMIT_TOOL], "tool_choice": TOOL_NAME},
    observation={"type": "text", "fields": ["problem"]},
    capabilities={"tool_calls": True, "multi_turn": False, "supports_prompt_template": True},
)


def render_prompt(template: Any, problem: str) -> list[dict[str, str]]:
    """Messages from a prompt template: `{system, user}` sections or a list of `{role, content}`.

    `{problem}` is replaced literally, so templates may hold other braces (`\\boxed{}`).
    """
    if template is None:
        template = DEFAULT_PROMPT
    if isinstance(template, Mapping) and "sections" in template:
        template = template["sections"]
    sections: list[tuple[Any, Any]]
    if isinstance(template, Mapping):
        sections = [(role, template[role]) for role in ("system", "user") if template.get(role)]
    elif isinstance(template, Sequence) and not isinstance(template, str):
        sections = [
            (item.get("role"), item.get("content") or item.get("pattern"))
            for item in template
            if isinstance(item, Mapping)
        ]
    else:
        sections = []
    if not sections or any(
        not isinstance(role, str) or not isinstance(text, str) for role, text in sections
    ):
        raise invalid_request(
            "policy.config.prompt_template must be {system, user} strings or a list of "
            "{role, content} messages.",
            loc=["body", "policy", "config", "prompt_template"],
            msg="not a prompt template",
        )
    messages = [
        {"role": role, "content": text.replace("{problem}", problem)} for role, text in sections
    ]
    if not any("{problem}" in text for _, text in sections):
        messages.append({"role": "user", "content": problem})
    return messages


def feedback(grade: Grade, problem: MathProblem) -> str:
    """One sentence on the answer, for an optimizer's reflection: what failed, on which kind."""
    if grade.correct:
        return f"correct (kind: {problem.kind})"
    submitted = "nothing" if grade.submitted is None else repr(grade.submitted)
    return (
        f"{grade.reason} (kind: {problem.kind}): submitted {submitted}, expected {problem.answer}"
    )


def task_info_for(problem: MathProblem) -> TaskInfo:
    info = BASE_TASK_INFO.for_instance(
        seed=problem.seed, split=problem.split, index=problem.seed, kind=problem.kind
    )
    info.observation = {"type": "text", "problem": problem.text}
    return info


def _problem_for(request: RolloutRequest) -> MathProblem:
    config = request.env.config
    seed = request.env.seed if request.env.seed is not None else config.get("seed", 0)
    split = config.get("split", "train")
    try:
        number = int(seed)
        if not SEED_RANGE[0] <= number <= SEED_RANGE[1]:
            raise ValueError("the seed is outside the 64-bit integer range")
        return generate_problem(number, split if isinstance(split, str) else repr(split)[:40])
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
        reason = str(exc)[:200]
        raise invalid_request(
            f"Cannot pick a problem: {reason}.", loc=["body", "env"], msg=reason
        ) from None


def caller_api_key(policy: Mapping[str, Any]) -> str | None:
    """The caller's own key for its own endpoint (`policy.config.api_key`), if it sent one.

    It is a value the caller owns, never the name of a server variable: server keys go only
    where the app's credential map binds them.
    """
    key = policy.get("api_key")
    if key is None or key == "":
        return None
    if (
        not isinstance(key, str)
        or len(key) > MAX_CALLER_KEY_CHARS
        or not key.isascii()
        or not key.isprintable()
        or any(c.isspace() for c in key)
    ):
        raise invalid_request(
            "policy.config.api_key must be a key: printable ASCII without spaces.",
            loc=["body", "policy", "config", "api_key"],
            msg="not a usable key",
        )
    return key


async def rollout(request: RolloutRequest, context: RolloutContext) -> RolloutResponse:
    problem = _problem_for(request)
    policy = request.policy.config
    if context.inference_url is None:
        raise invalid_request(
            "policy.config.inference_url is required by the math app.",
            loc=["body", "policy", "config", "inference_url"],
            msg="missing",
            type="missing",
        )
    payload: dict[str, Any] = {
        "model": policy.get("model") or DEFAULT_MODEL,
        "messages": render_prompt(policy.get("prompt_template"), problem.text),
        "tools": [MATH_SUBMIT_TOOL],
        "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}},
    }
    for key in ("temperature", "max_tokens", "max_completion_tokens", "top_p"):
        if policy.get(key) is not None:
            payload[key] = policy[key]
    # the request model has checked these numbers (finite, in range, right type)
    timeout = min(float(policy.get("timeout_s") or DEFAULT_INFERENCE_TIMEOUT_S), context.deadline_s)
    api_key = caller_api_key(policy)
    observation = {"problem": problem.text, "seed": problem.seed, "split": problem.split}
    trace = context.trace
    with trace.timestep("answer", metadata={"kind": problem.kind}) if trace else nullcontext():
        if trace:
            trace.record_message(observation, "observation")
        started = datetime.now(UTC)
        completion = await chat_completion(
            context.http,
            context.inference_url,
            payload,
            api_key=api_key,
            timeout=timeout,
        )
        grade = grade_completion(completion, problem.answer)
        if trace:
            trace.record_chat_completion(
                payload, completion, started_at=started, completed_at=datetime.now(UTC)
            )
            trace.record_environment(
                grade.reward,
                terminated=True,
                state_after={"reason": grade.reason, "correct": grade.correct},
            )
            trace.record_outcome_reward(grade.reward, achievements_count=int(grade.correct))
    message = completion["choices"][0]["message"]
    step = RolloutStep(
        obs=observation,
        tool_calls=message.get("tool_calls") or [],
        reward=grade.reward,
        done=True,
        truncated=False,
        info={"grade": {"reason": grade.reason, "correct": grade.correct}},
    )
    trajectory = RolloutTrajectory(
        env_id=context.env_id,
        policy_id=context.policy_id,
        steps=[step],
        final={"observation": observation, "reward": grade.reward},
        inference_url=context.inference_url,
    )
    return RolloutResponse(
        run_id=request.run_id,
        trajectories=[trajectory],
        metrics=RolloutMetrics(
            episode_returns=[grade.reward],
            num_steps=1,
            outcome_score=grade.reward,
            details={
                "correct": grade.correct,
                "reason": grade.reason,
                "submitted_answer": grade.submitted,
                "expected_answer": str(problem.answer),
                "kind": problem.kind,
                "feedback": feedback(grade, problem),
                "problem_id": problem.id,
                "model": payload["model"],
                "usage": completion.get("usage"),
            },
        ),
        ops_executed=len(request.ops),
    )


def build_config() -> TaskAppConfig:
    datasets = TaskDatasetRegistry()
    datasets.register(BASE_TASK_INFO.dataset, lambda info: generate_problem)

    def provide_task_instances(seeds: Sequence[int]) -> list[TaskInfo]:
        generate = datasets.get(DATASET_ID)
        return [task_info_for(generate(seed, "train")) for seed in seeds]

    def describe_taskset() -> dict[str, Any]:
        return {
            **BASE_TASK_INFO.model_dump(mode="json", include={"task", "dataset"}),
            "kinds": list(KINDS),
            "size": "unbounded: any integer seed names a problem",
        }

    return TaskAppConfig(
        app_id=APP_ID,
        name="Math task app",
        description="Single-step math problems graded by equivalence; reference task app.",
        base_task_info=BASE_TASK_INFO,
        rollout=rollout,
        describe_taskset=describe_taskset,
        provide_task_instances=provide_task_instances,
        rubrics=BASE_TASK_INFO.rubric,
        datasets=datasets,
    )
