"""A scripted stand-in policy served for a test: its URL, and what it was asked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from synth_ai.offline_policy.scripted import (
    Rule,
    Script,
    ScriptedCall,
    ScriptedPolicy,
    create_scripted_policy_app,
)


@dataclass(frozen=True)
class ServedPolicy:
    """A scripted stand-in on loopback: `url` for the rollout's `inference_url`, `calls` (what
    each request asked and what it was answered) and `unanswered` (how many it could not)."""

    url: str
    policy: ScriptedPolicy

    @property
    def calls(self) -> list[ScriptedCall]:
        return list(self.policy.calls)

    @property
    def unanswered(self) -> int:
        return self.policy.unanswered


@contextlib.contextmanager
def serve_scripted_policy(script: Script | Sequence[Rule]) -> Iterator[ServedPolicy]:
    from synth_ai.task import serve_in_background

    app = create_scripted_policy_app(script)
    with serve_in_background(app) as url:
        yield ServedPolicy(f"{url}/v1", app.state.policy)
