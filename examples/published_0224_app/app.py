"""A task app written for the published synth-ai 0.2.24, unchanged: arithmetic problems.

It uses every name of 0.2.24's author API that COMPATIBILITY.md lists as running unchanged, in
the way the published examples do, and runs on 0.2.24 and on this project alike:

    uvicorn app:app --port 8001              # either release
    synth-ai serve app.py                    # this project
    python app.py                            # run_task_app, either release

tests/test_compat_0224_parity.py serves this file on both and compares the answers.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from synth_ai.task.apps import ModalDeploymentConfig, TaskAppEntry, register_task_app, registry
from synth_ai.task.auth import is_api_key_header_authorized, normalize_environment_api_key
from synth_ai.task.contracts import (
    RolloutMetrics,
    RolloutRequest,
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
    TaskDescriptor,
    TaskInfo,
)
from synth_ai.task.datasets import TaskDatasetRegistry, TaskDatasetSpec
from synth_ai.task.errors import http_exception
from synth_ai.task.proxy import extract_message_text, inject_system_hint
from synth_ai.task.rubrics import (
    Criterion,
    Rubric,
    blend_rubrics,
    load_rubric,
    score_events_against_rubric,
    score_outcome_against_rubric,
)
from synth_ai.task.server import (
    ProxyConfig,
    RubricBundle,
    TaskAppConfig,
    create_task_app,
    require_api_key_dependency,
    run_task_app,
)
from synth_ai.task.tracing_utils import (
    build_tracer_factory,
    resolve_sft_output_dir,
    resolve_tracing_db_url,
    tracing_env_enabled,
)
from synth_ai.task.vendors import normalize_vendor_keys
from synth_ai.tracing_v3.session_tracer import SessionTracer

APP_ID = "arith-0224"
SIZE = 100
DIFFICULTIES = ("easy", "hard")
HINT = "Answer with one integer."

DATASET = TaskDatasetSpec(
    id="arith",
    name="Arithmetic",
    version="1",
    splits=["train", "test"],
    default_split="train",
    cardinality=SIZE,
    description="a + b for seeded a and b",
)

BASE_RUBRIC = load_rubric(
    {
        "version": "1",
        "goal_text": "Answer the sum.",
        "criteria": [{"id": "correct", "description": "The answer is right", "weight": 2.0}],
    }
)
OUTCOME_RUBRIC = blend_rubrics(
    BASE_RUBRIC,
    Rubric(
        version="1",
        criteria=[
            Criterion(id="correct", description="The sum is right", weight=1.0, required=True),
            Criterion(id="format", description="One integer", weight=0.5),
        ],
    ),
)

BASE_INFO = TaskInfo(
    task=TaskDescriptor(id=APP_ID, name="Arithmetic", version="1.0"),
    environment="arith",
    dataset=DATASET.model_dump(),
    rubric={},
    inference={"model": "offline-policy"},
    limits={"max_turns": 1},
)


def problems(spec: TaskDatasetSpec) -> list[tuple[int, int]]:
    return [(seed * 7 % 50, seed * 13 % 40) for seed in range(spec.cardinality or SIZE)]


def instance(seed: int) -> TaskInfo:
    a, b = problems(DATASET)[TaskDatasetRegistry.normalise_seed(seed, cardinality=SIZE)]
    info = BASE_INFO.model_copy(deep=True)
    info.task_metadata = {"seed": seed, "a": a, "b": b}
    return info


router = APIRouter(prefix="/arith")


@router.get("/problem/{seed}")
async def problem(seed: int, request: Request) -> dict[str, Any]:
    """An author route reading app_state; a seed outside the dataset is a 404."""
    if not 0 <= seed < SIZE:
        raise HTTPException(status_code=404, detail=f"no problem {seed}")
    a, b = request.app.state.problems[seed]
    return {"seed": seed, "a": a, "b": b, "split": request.app.state.split}


@router.get("/admin")
async def admin(request: Request) -> dict[str, Any]:
    """An author route checking the key itself, as the published docs say to."""
    require_api_key_dependency(request)
    return {"authorized": is_api_key_header_authorized(request), "size": SIZE}


async def rollout(request: RolloutRequest, fastapi_request: Request) -> RolloutResponse:
    difficulty = request.env.config.get("difficulty", "easy")
    if difficulty not in DIFFICULTIES:
        raise http_exception(
            400,
            "bad_difficulty",
            "difficulty must be easy or hard",
            extra={"allowed": ["easy", "hard"]},
        )
    seed = request.env.seed or 0
    a, b = fastapi_request.app.state.problems[
        TaskDatasetRegistry.normalise_seed(seed, cardinality=SIZE)
    ]
    messages = inject_system_hint({"messages": [{"role": "user", "content": f"{a}+{b}"}]}, HINT)
    answer = str(request.policy.config.get("answer", ""))
    correct = answer.strip() == str(a + b)
    outcome = score_outcome_against_rubric(
        {"correct": float(correct), "format": 1.0}, OUTCOME_RUBRIC
    )
    events = score_events_against_rubric(
        [{"criterion_id": "correct", "score": float(correct)}], OUTCOME_RUBRIC
    )
    reward = float(correct)
    step = RolloutStep(
        obs={
            "prompt": extract_message_text(messages["messages"][-1]),
            "system": messages["messages"][0]["content"],
        },
        tool_calls=[],
        reward=reward,
        done=True,
        info={"outcome": outcome["score"], "events": events["score"]},
    )
    return RolloutResponse(
        run_id=request.run_id,
        trajectories=[
            RolloutTrajectory(
                env_id=request.env.env_id or "arith",
                policy_id=request.policy.policy_id or "policy",
                steps=[step],
                length=1,
                inference_url=str(request.policy.config.get("inference_url", "")),
            )
        ],
        metrics=RolloutMetrics(
            episode_returns=[reward],
            mean_return=reward,
            num_steps=1,
            num_episodes=1,
            outcome_score=reward,
        ),
    )


def describe_taskset() -> dict[str, Any]:
    return {"id": APP_ID, "name": "Arithmetic", "size": SIZE, "splits": DATASET.splits}


def provide_task_instances(seeds: list[int]) -> list[TaskInfo]:
    return [instance(seed) for seed in seeds]


STATE: dict[str, Any] = {"events": []}


def on_startup(app: Any) -> None:
    normalize_vendor_keys()
    normalize_environment_api_key()
    STATE["events"].append("started")


async def on_shutdown() -> None:
    STATE["events"].append("stopped")


def build_config() -> TaskAppConfig:
    datasets = TaskDatasetRegistry()
    datasets.register(DATASET, problems)
    tracer_factory = build_tracer_factory(
        SessionTracer, enabled=tracing_env_enabled(), db_url=resolve_tracing_db_url()
    )
    return TaskAppConfig(
        app_id=APP_ID,
        name="Arithmetic (0.2.24 style)",
        description="a + b, written for synth-ai 0.2.24",
        base_task_info=BASE_INFO,
        describe_taskset=describe_taskset,
        provide_task_instances=provide_task_instances,
        rollout=rollout,
        dataset_registry=datasets,
        rubrics=RubricBundle(outcome=OUTCOME_RUBRIC, events=BASE_RUBRIC),
        proxy=ProxyConfig(
            enable_openai=True,
            enable_groq=True,
            system_hint=HINT,
            openai_url=os.environ.get(
                "ARITH_OPENAI_URL", "https://api.openai.com/v1/chat/completions"
            ),
            groq_url=os.environ.get(
                "ARITH_GROQ_URL", "https://api.groq.com/openai/v1/chat/completions"
            ),
        ),
        routers=(router,),
        app_state={
            "problems": datasets.get(DATASET.id),
            "split": TaskDatasetRegistry.ensure_split(DATASET, None),
            "tracer_factory": tracer_factory,
            "sft_output_dir": resolve_sft_output_dir(),
        },
        require_api_key=True,
        expose_debug_env=True,
        cors_origins=None,
        startup_hooks=(on_startup,),
        shutdown_hooks=(on_shutdown,),
    )


register_task_app(
    entry=TaskAppEntry(
        app_id=APP_ID,
        description="a + b, written for synth-ai 0.2.24",
        config_factory=build_config,
        aliases=("arith-published",),
        env_files=(),
        modal=ModalDeploymentConfig(app_name="arith-0224", pip_packages=("fastapi",)),
    )
)
assert registry.get("arith-published").app_id == APP_ID

app = create_task_app(build_config())

if __name__ == "__main__":
    run_task_app(build_config, host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
