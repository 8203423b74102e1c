"""What `eval` and `check` take: a URL, or an app served in this process for the command."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import click

from synth_ai.task import create_task_app, get_task_app, serve_in_background
from synth_ai.task.references import AppLoadFailed
from synth_ai.task.registry import ConfigFactoryFailed


def serve_target(stack: contextlib.ExitStack, target: str) -> str:
    """A URL as given, or an app (a registered name, `app.py`, `module:attribute`) served in
    this process on a free loopback port, with a key made for the command if none is set."""
    if target.startswith(("http://", "https://")):
        return target.rstrip("/")
    try:
        config = get_task_app(target).build()
    except AppLoadFailed as exc:
        raise click.ClickException(str(exc)) from None
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    except ConfigFactoryFailed as exc:
        raise click.ClickException(str(exc)) from exc
    if not os.environ.get("ENVIRONMENT_API_KEY"):
        os.environ["ENVIRONMENT_API_KEY"] = secrets.token_urlsafe(24)  # this process only
    return stack.enter_context(serve_in_background(create_task_app(config)))


POLICY_SCRIPT_HELP = (
    "Roll out with a scripted stand-in policy (not an LLM): FILE defines policy(messages, "
    "tools) -> reply, or RULES (see `synth-ai policy serve --script`)."
)


def serve_policy_script(stack: contextlib.ExitStack, script: Path) -> str:
    """The scripted stand-in for `script`, served on loopback for the command: its URL."""
    from synth_ai.offline_policy import create_scripted_policy_app
    from synth_ai.offline_policy.script_file import ScriptFileError, load_script

    try:
        loaded = load_script(script)
    except ScriptFileError as exc:
        raise click.ClickException(str(exc)) from None
    url = stack.enter_context(serve_in_background(create_scripted_policy_app(loaded)))
    return f"{url}/v1"
