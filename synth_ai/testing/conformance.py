"""`assert_conforms`: the contract checks of `synth-ai check`, as one assertion for a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from typing import Any

from synth_ai.task.conformance import ConformanceReport, check_conformance


def assert_conforms(
    app: Any,
    *,
    api_key: str | None = None,
    inference_url: str | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    script: Any = None,
) -> ConformanceReport:
    """Check an app against the contract and fail the test naming every failed check.

    `app` is a URL, or anything `synth-ai serve` takes (a `TaskAppConfig`, a `TaskAppEntry`, a
    registered name, `app.py`, `module:attribute`), served in-process on loopback. Rollouts use
    `inference_url`, else a scripted stand-in answering `script` (a function `(messages, tools)
    -> reply` or a list of `Rule`s), else the offline math stand-in, served for the check.
    """
    from synth_ai.offline_policy import create_offline_policy_app
    from synth_ai.task import serve_in_background

    from .scripted import serve_scripted_policy

    with contextlib.ExitStack() as stack:
        key = api_key or os.environ.get("ENVIRONMENT_API_KEY")
        if not isinstance(app, str) or not app.startswith(("http://", "https://")):
            if key is None:
                key = secrets.token_urlsafe(24)
                stack.enter_context(_environment("ENVIRONMENT_API_KEY", key))
            app = stack.enter_context(serve_in_background(asgi_app_of(app)))
        if key is None:
            raise ValueError("a URL needs api_key= (or ENVIRONMENT_API_KEY) to be checked")
        if inference_url is None and script is not None:
            inference_url = stack.enter_context(serve_scripted_policy(script)).url
        elif inference_url is None:
            inference_url = stack.enter_context(serve_in_background(create_offline_policy_app()))
        report = asyncio.run(check_conformance(app, key, seeds=seeds, inference_url=inference_url))
    if report.stopped is not None:
        raise AssertionError(f"nothing could be checked: {report.stopped}")
    if not report.passed:
        failed = [c for c in report.checks if c.required and c.status == "fail"]
        lines = "\n".join(f"  {c.name}: {c.detail}" for c in failed)
        raise AssertionError(f"{len(failed)} contract check(s) failed at {report.url}:\n{lines}")
    return report


def asgi_app_of(app: Any) -> Any:
    from synth_ai.task import TaskAppConfig, create_task_app
    from synth_ai.task.references import entry_of, find_task_app

    if isinstance(app, str):
        return create_task_app(find_task_app(app).build())
    if isinstance(app, TaskAppConfig):
        return create_task_app(app)
    return create_task_app(entry_of(app, repr(app)).build())


@contextlib.contextmanager
def _environment(name: str, value: str) -> Any:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
