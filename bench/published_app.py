"""The same trivial task app on the published `synth-ai==0.2.24`, for comparison.

Runs only inside the bench's own virtualenv of that release (bench/.cache/published), never
in the project's; started as `python published_app.py PORT`, served by serve_app.py as
`published_app:app` (so its uvicorn settings match the other servers'), or, copied to a folder
as `trivial_task_app.py` (the names 0.2.24's CLI discovers), through its own serve command.
"""

import sys

import uvicorn

from synth_ai.task.apps import TaskAppEntry, register_task_app
from synth_ai.task.contracts import (
    RolloutMetrics,
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
    TaskDescriptor,
    TaskInfo,
)
from synth_ai.task.server import TaskAppConfig, create_task_app

BASE = TaskInfo(
    task=TaskDescriptor(id="trivial", name="Trivial"),
    environment="trivial",
    dataset={},
    rubric={},
    inference={},
    limits={},
)


async def rollout(request, fastapi_request):
    return RolloutResponse(
        run_id=request.run_id,
        trajectories=[
            RolloutTrajectory(
                env_id="trivial",
                policy_id="p",
                steps=[
                    RolloutStep(
                        obs={"seed": request.env.seed}, tool_calls=[], reward=1.0, done=True
                    )
                ],
                length=1,
                inference_url="http://127.0.0.1/v1/chat/completions",
            )
        ],
        metrics=RolloutMetrics(
            episode_returns=[1.0], mean_return=1.0, num_steps=1, num_episodes=1, outcome_score=1.0
        ),
    )


config = TaskAppConfig(
    app_id="trivial",
    name="Trivial",
    description="bench",
    base_task_info=BASE,
    describe_taskset=lambda: {"name": "trivial"},
    provide_task_instances=lambda seeds: [BASE for _ in seeds],
    rollout=rollout,
)

register_task_app(
    entry=TaskAppEntry(app_id="trivial", description="bench", config_factory=lambda: config)
)


def app():
    return create_task_app(config)


if __name__ == "__main__":
    uvicorn.run(
        app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
    )
