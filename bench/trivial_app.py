"""The trivial task app on this framework, as a script (`python trivial_app.py PORT`) or through
the CLI (`synth-ai serve trivial_app.py:config`).

The cold-start bench runs it with the python of a fresh install of this checkout, so it imports
only the installed package (never `bench.*`), like `published_app.py` does for 0.2.24.
"""

import sys

import uvicorn

from synth_ai.task import (
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
    TaskAppConfig,
    TaskDescriptor,
    TaskInfo,
    create_task_app,
)


async def rollout(request, context):
    step = RolloutStep(obs={"seed": request.env.seed}, reward=1.0, done=True)
    trajectory = RolloutTrajectory(env_id=context.env_id, policy_id=context.policy_id, steps=[step])
    metrics = {"episode_returns": [1.0], "outcome_score": 1.0, "num_steps": 1}
    return RolloutResponse(trajectories=[trajectory], metrics=metrics)


config = TaskAppConfig(
    app_id="trivial",
    name="Trivial",
    description="bench",
    base_task_info=TaskInfo(task=TaskDescriptor(id="trivial", name="Trivial"), environment="t"),
    rollout=rollout,
)

if __name__ == "__main__":
    uvicorn.run(
        create_task_app(config),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
    )
