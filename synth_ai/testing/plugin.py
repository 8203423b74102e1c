"""The pytest plugin (entry point `pytest11`): fixtures for testing a task app for real.

- `offline_policy_url`: the offline stand-in policy on loopback (session-wide; it solves the
  math app's problems only);
- `scripted_policy(script)`: a scripted stand-in for the test, answering what `script` says
  (a function `(messages, tools) -> reply` or a list of `Rule`s); it answers a `ServedPolicy`
  with its `url`, the `calls` it was asked and how many it left `unanswered`;
- `task_app_key`: an `ENVIRONMENT_API_KEY` for the test (the one set, else a fresh one);
- `serve_task_app(app)`: serves an app (a config, an entry, a name, `app.py`,
  `module:attribute`) on loopback for the test and answers its URL;
- `task_app_client(url)`: a `SyncTaskAppClient` with the test's key, closed afterwards.

Everything heavy is imported inside the fixtures, so loading the plugin costs a test run
nothing.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def offline_policy_url() -> Iterator[str]:
    from synth_ai.offline_policy import create_offline_policy_app
    from synth_ai.task import serve_in_background

    with serve_in_background(create_offline_policy_app()) as url:
        yield url


@pytest.fixture
def scripted_policy() -> Iterator[Callable[[Any], Any]]:
    from .scripted import serve_scripted_policy

    with contextlib.ExitStack() as stack:

        def serve(script: Any) -> Any:
            return stack.enter_context(serve_scripted_policy(script))

        yield serve


@pytest.fixture
def task_app_key(monkeypatch: pytest.MonkeyPatch) -> str:
    import os

    key = os.environ.get("ENVIRONMENT_API_KEY") or secrets.token_urlsafe(24)
    monkeypatch.setenv("ENVIRONMENT_API_KEY", key)
    return key


@pytest.fixture
def serve_task_app(task_app_key: str) -> Iterator[Callable[[Any], str]]:
    from synth_ai.task import serve_in_background

    from .conformance import asgi_app_of

    with contextlib.ExitStack() as stack:

        def serve(app: Any) -> str:
            return str(stack.enter_context(serve_in_background(asgi_app_of(app))))

        yield serve


@pytest.fixture
def task_app_client(task_app_key: str) -> Iterator[Callable[[str], Any]]:
    from synth_ai.client import SyncTaskAppClient

    with contextlib.ExitStack() as stack:

        def client(url: str) -> SyncTaskAppClient:
            return stack.enter_context(SyncTaskAppClient(url, task_app_key))

        yield client
