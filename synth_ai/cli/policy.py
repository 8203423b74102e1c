"""`synth-ai policy serve --offline | --script FILE`: a stand-in policy (not an LLM), for trying
and testing apps with no key."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def policy() -> None:
    """Policies to roll out with, served locally."""


@policy.command("serve")
@click.option(
    "--offline",
    is_flag=True,
    help="The offline stand-in (no LLM vendor: it solves the math app's problems and echoes "
    "`Say N`; model `offline-prompt-sensitive` slips unless its prompt teaches it, model "
    "`offline-reflection` proposes instructions from feedback).",
)
@click.option(
    "--script",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A scripted stand-in: FILE defines policy(messages, tools) -> reply (text, a ToolCall, "
    "a list of them, or None when it cannot answer) or RULES, a list of Rule(pattern, reply).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of answers made wrong on purpose (deterministic per prompt; --offline only).",
)
def serve(offline: bool, script: Path | None, host: str, port: int, error_rate: float) -> None:
    """Serve an OpenAI-compatible /v1/chat/completions on HOST:PORT.

    One of --offline or --script is required, so nobody mistakes a stand-in for a model."""
    from synth_ai.task.serving import run_app

    if offline == (script is not None):
        raise click.UsageError(
            "pass --offline or --script FILE: stand-ins are the only policies served here "
            "(for a real model, point --inference-url at its OpenAI-compatible endpoint)"
        )
    if script is not None:
        from synth_ai.offline_policy import SCRIPTED_MODEL, create_scripted_policy_app
        from synth_ai.offline_policy.script_file import ScriptFileError, load_script

        try:
            loaded = load_script(script)
        except ScriptFileError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"scripted stand-in policy (not an LLM: it answers what {script} says), model "
            f"{SCRIPTED_MODEL!r}: http://{host}:{port}/v1\n  a request the script cannot answer "
            "gets a marked reply, counted by eval and check",
            err=True,
        )
        run_app(create_scripted_policy_app(loaded), host=host, port=port)
        return
    from synth_ai.offline_policy import (
        OFFLINE_MODEL,
        PROMPT_SENSITIVE_MODEL,
        REFLECTION_MODEL,
        create_offline_policy_app,
    )

    click.echo(
        f"offline stand-in policy (not an LLM), model {OFFLINE_MODEL!r}: http://{host}:{port}/v1"
        f"\n  also {PROMPT_SENSITIVE_MODEL!r} (slips on fractions and word problems unless its "
        f"prompt teaches them) and {REFLECTION_MODEL!r} (a reflection model for prompt "
        "optimization: proposes from the feedback it is given)",
        err=True,
    )
    run_app(create_offline_policy_app(error_rate=error_rate), host=host, port=port)
