"""A trivial environment on OpenEnv's published server (`openenv-core`), for comparison.

Runs only inside the bench's own virtualenv of that release (bench/.cache/openenv), never in
the project's; served by serve_app.py as `openenv_app:app`. One `POST /step` is one episode: the
server makes a fresh environment for the request (as its HTTP API does), the action carries the
seed, and the observation comes back done with reward 1.0. `step_async` is overridden so the step
runs on the loop, as this project's trivial executor does, instead of hopping to a worker thread.
"""

from typing import Any

from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State


class SeedAction(Action):
    seed: int | None = None


class SeedObservation(Observation):
    seed: int | None = None


class TrivialEnvironment(Environment):
    SUPPORTS_CONCURRENT_SESSIONS = True

    def reset(
        self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any
    ) -> SeedObservation:
        return SeedObservation(seed=seed)

    def step(
        self, action: SeedAction, timeout_s: float | None = None, **kwargs: Any
    ) -> SeedObservation:
        return SeedObservation(seed=action.seed, done=True, reward=1.0)

    async def step_async(
        self, action: SeedAction, timeout_s: float | None = None, **kwargs: Any
    ) -> SeedObservation:
        return self.step(action, timeout_s, **kwargs)

    @property
    def state(self) -> State:
        return State(step_count=1)


def app() -> Any:
    return create_app(TrivialEnvironment, SeedAction, SeedObservation, env_name="trivial")
